//go:build unix

package atomicfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestInstallActivateRead(t *testing.T) {
	ca := mustCA(t)
	dir := filepath.Join(t.TempDir(), "example.com")
	s := mustOpen(t, dir)
	if s.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", s.Dir(), dir)
	}
	if fi, err := os.Stat(filepath.Join(dir, generationsName)); err != nil || !fi.IsDir() {
		t.Fatalf("Open did not create generations/: %v", err)
	}
	if _, err := s.Current(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Current on a new lineage: err = %v, want fs.ErrNotExist", err)
	}

	f := ca.mustIssue(t, 1)
	g, err := s.Install(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Generation{1, filepath.Join(dir, "generations", "000001")}); g != want {
		t.Errorf("Install = %+v, want %+v", g, want)
	}
	if _, err := s.Current(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Install changed current: %v", err)
	}
	if err := s.Activate(g); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current(); err != nil || cur != g {
		t.Errorf("Current = %+v, %v; want %+v", cur, err, g)
	}
	if serial, err := served(dir); err != nil || serial != 1 {
		t.Errorf("served = %d, %v", serial, err)
	}

	got, err := s.Read(g)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Cert, f.Cert) || !bytes.Equal(got.Chain, f.Chain) || !bytes.Equal(got.Key, f.Key) {
		t.Error("Read returned other bytes than installed")
	}

	modes := map[string]fs.FileMode{CertFile: 0o644, ChainFile: 0o644, FullchainFile: 0o644, KeyFile: 0o600, CombinedFile: 0o600}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(g.Dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, want)
		}
		target, err := os.Readlink(filepath.Join(dir, name))
		if err != nil || target != "current/"+name {
			t.Errorf("stable link %s -> %q, %v; want current/%s", name, target, err, name)
		}
	}
	if target, _ := os.Readlink(filepath.Join(dir, CurrentLink)); target != "generations/000001" {
		t.Errorf("current -> %q, want generations/000001 (relative)", target)
	}
	if fi, _ := os.Stat(g.Dir); fi.Mode().Perm() != 0o755 {
		t.Errorf("generation directory mode %v, want 0755", fi.Mode().Perm())
	}

	// A second generation, activated; activating it again changes nothing.
	g2 := mustInstallActivate(t, s, ca.mustIssue(t, 2))
	if g2.Seq != 2 {
		t.Errorf("second generation = %d", g2.Seq)
	}
	if err := s.Activate(g2); err != nil {
		t.Errorf("Activate of the current generation: %v", err)
	}
	if gens, err := s.Generations(); err != nil || !slices.Equal(seqs(gens), []int{1, 2}) {
		t.Errorf("Generations = %v, %v", seqs(gens), err)
	}
	// Rolling back to a complete older generation is allowed.
	if err := s.Activate(g); err != nil {
		t.Fatal(err)
	}
	if serial, err := served(dir); err != nil || serial != 1 {
		t.Errorf("after rollback: served = %d, %v", serial, err)
	}
}

func TestInstallAssemblesFiles(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "l"))
	tests := []struct {
		name                string
		f                   Files
		fullchain, combined string
	}{
		{"no chain", Files{Cert: []byte("C\n"), Key: []byte("K\n")}, "C\n", "K\nC\n"},
		{"missing newlines", Files{Cert: []byte("C"), Chain: []byte("I"), Key: []byte("K")}, "C\nI\n", "K\nC\nI\n"},
		{"chain", Files{Cert: []byte("C\n"), Chain: []byte("I1\nI2\n"), Key: []byte("K\n")}, "C\nI1\nI2\n", "K\nC\nI1\nI2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := s.Install(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]string{FullchainFile: tt.fullchain, CombinedFile: tt.combined, ChainFile: string(tt.f.Chain)} {
				if b, _ := os.ReadFile(filepath.Join(g.Dir, name)); string(b) != want {
					t.Errorf("%s = %q, want %q", name, b, want)
				}
			}
		})
	}
	for _, f := range []Files{{Key: []byte("K")}, {Cert: []byte("C")}} {
		if _, err := s.Install(f); err == nil || !strings.Contains(err.Error(), "required") {
			t.Errorf("Install(%+v): err = %v", f, err)
		}
	}
}

func TestOpenRejectsBadModes(t *testing.T) {
	tests := []struct {
		name  string
		modes Modes
		want  string
	}{
		{"world-readable key", Modes{Key: 0o644}, "key mode"},
		{"group-writable key", Modes{Key: 0o660}, "key mode"},
		{"unreadable key", Modes{Key: 0o200}, "key mode"},
		{"group-writable cert", Modes{Cert: 0o664}, "certificate mode"},
		{"executable cert", Modes{Cert: 0o755}, "certificate mode"},
		{"group-writable dir", Modes{Dir: 0o775}, "directory mode"},
		{"no owner exec dir", Modes{Dir: 0o644}, "directory mode"},
		{"negative group", Modes{Group: "-2"}, "group id"},
		{"group name", Modes{Group: "www-data"}, "group id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "l")
			_, err := Open(dir, tt.modes)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open created %s despite bad modes", dir)
			}
		})
	}
	if _, err := Open("", Modes{}); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func TestOpenStrictModes(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"group-writable", func(t *testing.T, dir string) { chmod(t, dir, 0o775) }, "writable by its group"},
		{"other-writable", func(t *testing.T, dir string) { chmod(t, dir, 0o757) }, "writable by others"},
		{"world-writable", func(t *testing.T, dir string) { chmod(t, dir, 0o777) }, "writable by group and others"},
		{"owned by another user", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			if err := os.Chown(dir, 4242, -1); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 4242"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "l")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			_, err := Open(dir, Modes{})
			if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInsecure naming %s and %q", err, dir, tt.want)
			}
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "l")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path, Modes{}); err == nil || errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("err = %v", err)
		}
	})
}

func chmod(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestOpenExistingLineageWritesNothing: the no-op renewal path must stay cheap,
// so Open on an existing lineage changes nothing, not even a timestamp.
func TestOpenExistingLineageWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "example.com")
	mustInstallActivate(t, mustOpen(t, dir), mustCA(t).mustIssue(t, 1))
	snapshot := func() map[string]string {
		m := map[string]string{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			m[p] = fmt.Sprint(fi.Mode(), fi.ModTime(), fi.Size(), st.Ino, st.Uid, st.Gid)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := snapshot()
	for range 3 {
		s := mustOpen(t, dir)
		if _, err := s.Current(); err != nil {
			t.Fatal(err)
		}
	}
	after := snapshot()
	if len(before) != len(after) {
		t.Fatalf("entries changed: %d -> %d", len(before), len(after))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("%s changed: %s -> %s", p, b, after[p])
		}
	}
}

func TestCurrentBadStates(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		notExist bool
		want     string
	}{
		{"missing", func(*testing.T, string) {}, true, "no current generation"},
		{"dangling", func(t *testing.T, dir string) { symlink(t, "generations/000007", filepath.Join(dir, CurrentLink)) }, true, "dangling"},
		{"regular file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, CurrentLink), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false, "is a regular file"},
		{"directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, CurrentLink), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false, "is a directory"},
		{"absolute target", func(t *testing.T, dir string) { symlink(t, "/etc", filepath.Join(dir, CurrentLink)) }, false, "not a generation"},
		{"escaping target", func(t *testing.T, dir string) {
			symlink(t, "../other/generations/000001", filepath.Join(dir, CurrentLink))
		}, false, "not a generation"},
		{"non-canonical number", func(t *testing.T, dir string) { symlink(t, "generations/1", filepath.Join(dir, CurrentLink)) }, false, "not a generation"},
		{"generation is a file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, generationsName, "000003"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			symlink(t, "generations/000003", filepath.Join(dir, CurrentLink))
		}, false, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "l")
			s := mustOpen(t, dir)
			tt.setup(t, dir)
			g, err := s.Current()
			if err == nil || g != (Generation{}) {
				t.Fatalf("Current = %+v, %v; want an error", g, err)
			}
			if errors.Is(err, fs.ErrNotExist) != tt.notExist || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("err = %v; want fs.ErrNotExist %v, mentioning %q and the path", err, tt.notExist, tt.want)
			}
			// Recover and Prune cope too: no panic, a clear outcome.
			if _, err := s.Recover(); (err == nil) != (tt.name == "missing") {
				t.Errorf("Recover: err = %v", err)
			}
			if _, err := s.Prune(1); (err == nil) != (tt.name == "missing") {
				t.Errorf("Prune: err = %v", err)
			}
		})
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// TestActivateNeverDestroysUsersFiles: something else than the expected link at
// a stable link path, or at current, is reported (naming the path) before
// anything changes, and left alone.
func TestActivateNeverDestroysUsersFiles(t *testing.T) {
	ca := mustCA(t)
	tests := []struct {
		name, path string
		make       func(t *testing.T, path string)
		want       string
	}{
		{"regular file at a stable link", FullchainFile, func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is a regular file where the stable link"},
		{"link elsewhere", KeyFile, func(t *testing.T, p string) { symlink(t, "/etc/ssl/private/mine.pem", p) }, "want -> current/privkey.pem"},
		{"regular file at current", CurrentLink, func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "l")
			s := mustOpen(t, dir)
			var g1 Generation
			if tt.path != CurrentLink {
				g1 = mustInstallActivate(t, s, ca.mustIssue(t, 1))
				if err := os.Remove(filepath.Join(dir, tt.path)); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, tt.path)
			tt.make(t, path)
			before, _ := os.Readlink(path)
			beforeData, _ := os.ReadFile(path)

			g2, err := s.Install(ca.mustIssue(t, 2))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Activate(g2)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Activate: err = %v; want it to name %s and say %q", err, path, tt.want)
			}
			after, _ := os.Readlink(path)
			afterData, _ := os.ReadFile(path)
			if before != after || !bytes.Equal(beforeData, afterData) {
				t.Errorf("%s was modified", path)
			}
			if cur, _ := s.Current(); tt.path != CurrentLink && cur != g1 {
				t.Errorf("current moved to %+v despite the error", cur)
			}
			if _, err := s.Recover(); err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("Recover: err = %v, want it to name %s", err, path)
			}
		})
	}
}

// TestIncompleteGenerationIsNeverServed: a generation directory with a missing
// or empty file (not something Install produces, but a disk can) is not listed,
// not activated, and reported by Recover.
func TestIncompleteGenerationIsNeverServed(t *testing.T) {
	ca := mustCA(t)
	for _, damage := range []string{"missing key", "empty cert", "key is a directory"} {
		t.Run(damage, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "l")
			s := mustOpen(t, dir)
			mustInstallActivate(t, s, ca.mustIssue(t, 1))
			g2, err := s.Install(ca.mustIssue(t, 2))
			if err != nil {
				t.Fatal(err)
			}
			switch damage {
			case "missing key":
				err = os.Remove(filepath.Join(g2.Dir, KeyFile))
			case "empty cert":
				err = os.Truncate(filepath.Join(g2.Dir, CertFile), 0)
			case "key is a directory":
				if err = os.Remove(filepath.Join(g2.Dir, KeyFile)); err == nil {
					err = os.Mkdir(filepath.Join(g2.Dir, KeyFile), 0o755)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if gens, _ := s.Generations(); !slices.Equal(seqs(gens), []int{1}) {
				t.Errorf("Generations = %v, want [1]", seqs(gens))
			}
			if err := s.Activate(g2); err == nil || !strings.Contains(err.Error(), "incomplete") {
				t.Errorf("Activate: err = %v, want incomplete", err)
			}
			rep, err := s.Recover()
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Newer) != 0 || !slices.Equal(seqs(rep.Incomplete), []int{2}) || rep.Current.Seq != 1 {
				t.Errorf("Recover = %+v", rep)
			}
			if serial, err := served(dir); err != nil || serial != 1 {
				t.Errorf("served = %d, %v", serial, err)
			}
			if g3, err := s.Install(ca.mustIssue(t, 3)); err != nil || g3.Seq != 3 {
				t.Errorf("next Install = %+v, %v; want 3", g3, err)
			}
		})
	}
}

func TestRecoverWithoutCurrentReportsAllComplete(t *testing.T) {
	ca := mustCA(t)
	s := mustOpen(t, filepath.Join(t.TempDir(), "l"))
	for i := range 2 {
		if _, err := s.Install(ca.mustIssue(t, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Current != (Generation{}) || !slices.Equal(seqs(rep.Newer), []int{1, 2}) || len(rep.LinksCreated) != 0 {
		t.Errorf("Recover = %+v", rep)
	}
}

func TestPrune(t *testing.T) {
	ca := mustCA(t)
	tests := []struct {
		name       string
		gens       int
		current    int
		incomplete []int
		keep       int
		removed    []int
		left       []int
	}{
		{"keep 2 of 5", 5, 5, nil, 2, []int{1, 2, 3}, []int{4, 5}},
		{"keep 1", 5, 5, nil, 1, []int{1, 2, 3, 4}, []int{5}},
		{"keep more than there are", 3, 3, nil, 10, []int{}, []int{1, 2, 3}},
		{"never current or newer", 6, 3, nil, 1, []int{1, 2}, []int{3, 4, 5, 6}},
		{"keep counts newer ones", 6, 4, nil, 2, []int{1, 2, 3}, []int{4, 5, 6}},
		{"incomplete older ones go", 5, 5, []int{2, 4}, 2, []int{1, 2, 4}, []int{3, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "l")
			s := mustOpen(t, dir)
			var all []Generation
			for i := range tt.gens {
				g, err := s.Install(ca.mustIssue(t, int64(i+1)))
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, g)
			}
			if err := s.Activate(all[tt.current-1]); err != nil {
				t.Fatal(err)
			}
			for _, n := range tt.incomplete {
				if err := os.Remove(filepath.Join(all[n-1].Dir, CombinedFile)); err != nil {
					t.Fatal(err)
				}
			}
			removed, err := s.Prune(tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqs(removed); !slices.Equal(got, tt.removed) {
				t.Errorf("Prune removed %v, want %v", got, tt.removed)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, generationsName))
			var left []int
			for _, e := range entries {
				n, ok := parseSeq(e.Name())
				if !ok {
					t.Errorf("left behind: %s", e.Name())
				}
				left = append(left, n)
			}
			if !slices.Equal(left, tt.left) {
				t.Errorf("left %v, want %v", left, tt.left)
			}
			if serial, err := served(dir); err != nil || serial != int64(tt.current) {
				t.Errorf("served = %d, %v", serial, err)
			}
		})
	}
	s := mustOpen(t, filepath.Join(t.TempDir(), "l"))
	if _, err := s.Prune(0); err == nil {
		t.Error("Prune(0) succeeded")
	}
	if _, err := s.Install(ca.mustIssue(t, 1)); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.Prune(1); err != nil || len(removed) != 0 {
		t.Errorf("Prune without current = %v, %v; want nothing", removed, err)
	}
}

func TestPendingKey(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "l"))
	if _, err := s.PendingKey(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("PendingKey with none: err = %v", err)
	}
	if err := s.SavePendingKey(nil); err == nil {
		t.Error("SavePendingKey(nil) succeeded")
	}
	key := []byte("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
	if err := s.SavePendingKey(key); err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingKey()
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("PendingKey = %q, %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(s.Dir(), pendingKeyName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("pending key mode %v", fi.Mode().Perm())
	}
	for range 2 {
		if err := s.RemovePendingKey(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PendingKey(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after remove: err = %v", err)
	}
}

// TestGroup: with a group, keys are 0640 and every file and directory the
// Store creates belongs to the group.
func TestGroup(t *testing.T) {
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 4243 // root may give any group: proves the chown happens
	}
	dir := filepath.Join(t.TempDir(), "l")
	s := mustOpenModes(t, dir, Modes{Group: strconv.Itoa(gid), Dir: 0o750})
	g := mustInstallActivate(t, s, mustCA(t).mustIssue(t, 1))
	if err := s.SavePendingKey([]byte("k")); err != nil {
		t.Fatal(err)
	}
	check := func(path string, mode fs.FileMode) {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || int(st.Gid) != gid {
			t.Errorf("%s: mode %v group %d, want %v group %d", path, fi.Mode().Perm(), st.Gid, mode, gid)
		}
	}
	check(dir, 0o750)
	check(filepath.Join(dir, generationsName), 0o750)
	check(g.Dir, 0o750)
	check(filepath.Join(g.Dir, CertFile), 0o644)
	check(filepath.Join(g.Dir, KeyFile), 0o640)
	check(filepath.Join(g.Dir, CombinedFile), 0o640)
	check(filepath.Join(dir, pendingKeyName), 0o640)
}

func TestParseSeq(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"000001", 1, true},
		{"000042", 42, true},
		{"999999", 999999, true},
		{"1000000", 1000000, true},
		{"000000", 0, false},
		{"00001", 0, false},
		{"0000001", 0, false},
		{"00004a", 0, false},
		{"+00042", 0, false},
		{"", 0, false},
		{"999999999", maxGeneration, true},
		{"1000000000", 0, false},
		{"9223372036854775807", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		if got, ok := parseSeq(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("parseSeq(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if tt.ok && formatSeq(tt.want) != tt.in {
			t.Errorf("formatSeq(%d) = %q", tt.want, formatSeq(tt.want))
		}
	}
	if n, ok := parseTempSeq(".000043.tmp-abc"); !ok || n != 43 {
		t.Errorf("parseTempSeq = %d, %v", n, ok)
	}
	// Plausible accepts exactly the numbers parseSeq does.
	for _, n := range []int{-1, 0, 1, 42, maxGeneration, maxGeneration + 1} {
		_, parses := parseSeq(formatSeq(n))
		if got := (Generation{Seq: n}).Plausible(); got != parses {
			t.Errorf("Generation{Seq: %d}.Plausible() = %v, parseSeq accepts it: %v", n, got, parses)
		}
	}
}

// TestGenerationsSortNumerically: past 999999 names get longer and no longer sort
// as strings.
func TestGenerationsSortNumerically(t *testing.T) {
	ca := mustCA(t)
	s := mustOpen(t, filepath.Join(t.TempDir(), "l"))
	g := mustInstallActivate(t, s, ca.mustIssue(t, 1))
	if err := os.Rename(g.Dir, s.generation(999999).Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.Dir(), CurrentLink)); err != nil {
		t.Fatal(err)
	}
	g2, err := s.Install(ca.mustIssue(t, 2))
	if err != nil || g2.Seq != 1000000 || filepath.Base(g2.Dir) != "1000000" {
		t.Fatalf("Install = %+v, %v", g2, err)
	}
	if err := s.Activate(g2); err != nil {
		t.Fatal(err)
	}
	gens, _ := s.Generations()
	if !slices.Equal(seqs(gens), []int{999999, 1000000}) {
		t.Errorf("Generations = %v", seqs(gens))
	}
	if cur, err := s.Current(); err != nil || cur.Seq != 1000000 {
		t.Errorf("Current = %+v, %v", cur, err)
	}
}

func TestReadChecksGeneration(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "l"))
	for _, g := range []Generation{{Seq: 0}, {Seq: 1, Dir: "/elsewhere/000001"}} {
		if _, err := s.Read(g); err == nil {
			t.Errorf("Read(%+v) succeeded", g)
		}
		if err := s.Activate(g); err == nil {
			t.Errorf("Activate(%+v) succeeded", g)
		}
	}
	if _, err := s.Read(Generation{Seq: 5}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing generation: err = %v", err)
	}
}

// TestReadersNeverSeePartialStateDuring200Installs: readers loop while 200
// generations are installed and activated. Whoever opens combined.pem gets one
// whole generation with a matching key, and current always resolves to a complete
// generation whose files match each other.
func TestReadersNeverSeePartialStateDuring200Installs(t *testing.T) {
	installs := 200
	if testing.Short() {
		installs = 40
	}
	ca := mustCA(t)
	dir := filepath.Join(t.TempDir(), "example.com")
	s := mustOpen(t, dir)
	mustInstallActivate(t, s, ca.mustIssue(t, 1))
	files := make([]Files, installs)
	for i := range files {
		files[i] = ca.mustIssue(t, int64(i+2))
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	var combinedReads, currentReads int
	wg.Go(func() { // a server reading combined.pem
		for {
			select {
			case <-done:
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(dir, CombinedFile))
			if err != nil {
				t.Errorf("read combined.pem: %v", err)
				return
			}
			if _, err := checkCombined(b); err != nil {
				t.Errorf("combined.pem: %v", err)
				return
			}
			combinedReads++
			runtime.Gosched() // let the installer run on a 2-core machine
		}
	})
	wg.Go(func() { // a server opening current once, then its files
		for {
			select {
			case <-done:
				return
			default:
			}
			root, err := os.OpenRoot(filepath.Join(dir, CurrentLink))
			if err != nil {
				t.Errorf("open current: %v", err)
				return
			}
			var parts [len(stableFiles)][]byte
			for i, name := range stableFiles {
				if parts[i], err = root.ReadFile(name); err != nil {
					t.Errorf("current resolves to an incomplete generation: %v", err)
				}
			}
			_ = root.Close()
			cert, chain, full, key, comb := parts[0], parts[1], parts[2], parts[3], parts[4]
			if _, err := checkPair(cert, key); err != nil {
				t.Errorf("current: %v", err)
			}
			if !bytes.Equal(full, concatPEM(cert, chain)) || !bytes.Equal(comb, concatPEM(key, cert, chain)) {
				t.Error("current: files of different generations")
			}
			if t.Failed() {
				return
			}
			currentReads++
			runtime.Gosched()
		}
	})
	for _, f := range files {
		g, err := s.Install(f)
		if err != nil {
			t.Error(err)
			break
		}
		if err := s.Activate(g); err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
	if combinedReads == 0 || currentReads == 0 {
		t.Errorf("readers did not run: %d combined, %d current", combinedReads, currentReads)
	}
	if serial, err := served(dir); err != nil || serial != int64(installs+1) {
		t.Errorf("finally served %d, %v", serial, err)
	}
	t.Logf("%d installs; %d combined.pem reads, %d current reads checked", installs, combinedReads, currentReads)
}

// TestInstallIntoLineageMadeByLocker: the lineage directory may exist without
// generations/ (made by someone else for its .lock): Open leaves it alone,
// Install creates generations/.
func TestInstallIntoLineageMadeByLocker(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "l")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir)
	if _, err := os.Lstat(filepath.Join(dir, generationsName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open wrote into an existing lineage: %v", err)
	}
	mustInstallActivate(t, s, mustCA(t).mustIssue(t, 1))
	if serial, err := served(dir); err != nil || serial != 1 {
		t.Errorf("served = %d, %v", serial, err)
	}
	if rep, err := s.Recover(); err != nil || len(rep.Removed) != 0 {
		t.Errorf("Recover = %+v, %v (the .lock file must stay)", rep, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, ".lock")); err != nil {
		t.Error(".lock removed")
	}
}
