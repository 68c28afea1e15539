package atomicfs

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/lossyfs"
)

// mountLossy mounts a lossyfs (see internal/lossyfs) and returns it and its
// mount point. Without FUSE the test skips, or fails under CI=true.
func mountLossy(t *testing.T) (*lossyfs.FS, string) {
	t.Helper()
	skip := func(err error) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("FUSE is required under CI=true: %v", err)
		}
		t.Skipf("no power-loss simulation: %v", err)
	}
	if err := lossyfs.Available(); err != nil {
		skip(err)
	}
	mnt := t.TempDir()
	fsys, err := lossyfs.Mount(t.TempDir(), mnt)
	if err != nil {
		skip(err)
	}
	t.Cleanup(func() {
		if err := fsys.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return fsys, mnt
}

// powerCuts checks every disk a power cut can leave during rec (at every
// cut point: nothing unsynced kept, everything kept, each unsynced
// operation kept alone, and random subsets): the lineage at path root/NAME
// of the disk serves one of the serials in ok (0: nothing may be served).
func powerCuts(t *testing.T, rec *lossyfs.Recording, lineage string, ok ...int64) int {
	return powerCutsThen(t, rec, lineage, nil, ok...)
}

// powerCutsThen is powerCuts, calling then (when not nil) on each disk's
// lineage directory after the check.
func powerCutsThen(t *testing.T, rec *lossyfs.Recording, lineage string, then func(t *testing.T, dir string, d lossyfs.Disk), ok ...int64) int {
	t.Helper()
	rng := rand.New(rand.NewPCG(14, 14))
	n := 0
	for p := 0; p <= rec.Len(); p++ {
		for _, d := range rec.Disks(p, 4, true, rng) {
			n++
			dir := t.TempDir()
			if err := d.Materialize(dir); err != nil {
				t.Fatal(err)
			}
			serial, err := served(filepath.Join(dir, lineage))
			if errors.Is(err, fs.ErrNotExist) && nothingLinked(filepath.Join(dir, lineage)) {
				serial, err = 0, nil
			}
			good := false
			for _, s := range ok {
				good = good || (err == nil && serial == s)
			}
			if !good {
				last := "nothing"
				if p > 0 {
					last = rec.Op(p - 1).String()
				}
				t.Errorf("%v, after %s: served %d (%v), want one of %v", d, last, serial, err, ok)
			}
			if then != nil {
				then(t, filepath.Join(dir, lineage), d)
			}
		}
	}
	return n
}

// nothingLinked reports whether no stable link of the lineage resolves.
func nothingLinked(dir string) bool {
	for _, name := range stableFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

// TestPowerLossFirstInstall installs and activates the first generation of
// a lineage whose storage root does not exist yet, and checks every power
// cut: nothing is served, or the whole generation. Regression cases: the
// storage root's own entry was never fsynced (a cut lost the lineage with
// everything in it), and the stable links made before the first switch were
// not fsynced before it (a cut could keep current and lose some links).
func TestPowerLossFirstInstall(t *testing.T) {
	fsys, mnt := mountLossy(t)
	ca := mustCA(t)
	fsys.Checkpoint()
	s := mustOpen(t, filepath.Join(mnt, "root", "www"))
	g, err := s.Install(ca.mustIssue(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	// Install's contract: once it returns, the generation is durable.
	installed := fsys.Recording()
	if err := s.Activate(g); err != nil {
		t.Fatal(err)
	}
	rec := fsys.Recording()
	if d := installed.Disk(installed.Len(), "durable", func(int) bool { return false }); true {
		if b, ok := d.ReadFile("root/www/generations/000001/combined.pem"); !ok || len(b) == 0 {
			t.Errorf("a power cut right after Install returned loses the generation")
		}
	}
	n := powerCuts(t, rec, "root/www", 0, 1)
	if d := rec.Disk(rec.Len(), "durable", func(int) bool { return false }); true {
		dir := t.TempDir()
		if err := d.Materialize(dir); err != nil {
			t.Fatal(err)
		}
		if serial, err := served(filepath.Join(dir, "root", "www")); err != nil || serial != 1 {
			t.Errorf("after Install and Activate returned, a power cut leaves %d (%v), want serial 1", serial, err)
		}
	}
	t.Logf("%d operations, %d disks checked", rec.Len(), n)
}

// TestPowerLossRenewAndPrune installs a third generation over two durable
// ones, pruning to two, and checks every power cut: the old generation or
// the new one is served, whole, and the next Recover and Prune leave
// nothing incomplete behind.
func TestPowerLossRenewAndPrune(t *testing.T) {
	fsys, mnt := mountLossy(t)
	ca := mustCA(t)
	s := mustOpen(t, filepath.Join(mnt, "www"))
	mustInstallActivate(t, s, ca.mustIssue(t, 1))
	mustInstallActivate(t, s, ca.mustIssue(t, 2))
	fsys.Checkpoint()
	mustInstallActivate(t, s, ca.mustIssue(t, 3))
	if _, err := s.Prune(2); err != nil {
		t.Fatal(err)
	}
	rec := fsys.Recording()
	// After any cut, the next renewal's Recover and Prune leave no
	// generation directory that is incomplete (a prune's deletion that
	// the cut half undid) and no temporary one.
	n := powerCutsThen(t, rec, "www", func(t *testing.T, dir string, d lossyfs.Disk) {
		s, err := Open(dir, Modes{})
		if err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if _, err := s.Recover(); err != nil {
			t.Errorf("%v: Recover: %v", d, err)
		}
		if _, err := s.Prune(2); err != nil {
			t.Errorf("%v: Prune: %v", d, err)
		}
		rep, err := s.Recover()
		if err != nil || len(rep.Incomplete) > 0 || len(rep.Removed) > 0 {
			t.Errorf("%v: after Recover and Prune: incomplete %v, removed %v, %v", d, seqs(rep.Incomplete), rep.Removed, err)
		}
	}, 2, 3)
	t.Logf("%d operations, %d disks checked", rec.Len(), n)
}

// TestMkdirAllIsDurable: the directories MkdirAll creates survive a power
// cut once it has returned (their parents are fsynced), so a file durably
// written inside them survives too; a path that is a file is an error.
func TestMkdirAllIsDurable(t *testing.T) {
	fsys, mnt := mountLossy(t)
	fsys.Checkpoint()
	dir := filepath.Join(mnt, "a", "b", "c")
	if err := durable.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := durable.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("again: %v", err)
	}
	if err := durable.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := fsys.Recording()
	d := rec.Disk(rec.Len(), "durable", func(int) bool { return false })
	if b, ok := d.ReadFile("a/b/c/f"); !ok || string(b) != "data" {
		t.Errorf("after a power cut a/b/c/f holds %q (found %v), want \"data\"", b, ok)
	}
	if err := durable.MkdirAll(filepath.Join(dir, "f", "g"), 0o755); err == nil {
		t.Errorf("MkdirAll under a regular file: no error")
	}
}

// TestPowerLossWriteFile: at every power cut of WriteFile and of
// WriteFileNoDirSync the file holds the old content or the new, whole;
// once WriteFile has returned the new content is durable, while
// WriteFileNoDirSync's may still be taken back (as documented).
func TestPowerLossWriteFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		write     func(string, []byte, fs.FileMode) error
		wantAtEnd string
	}{
		{"WriteFile", durable.WriteFile, "new content"},
		{"WriteFileNoDirSync", durable.WriteFileNoDirSync, "old content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys, mnt := mountLossy(t)
			path := filepath.Join(mnt, "state.json")
			if err := durable.WriteFile(path, []byte("old content"), 0o644); err != nil {
				t.Fatal(err)
			}
			fsys.Checkpoint()
			if err := tc.write(path, []byte("new content"), 0o644); err != nil {
				t.Fatal(err)
			}
			rec := fsys.Recording()
			rng := rand.New(rand.NewPCG(14, 15))
			for p := 0; p <= rec.Len(); p++ {
				for _, d := range rec.Disks(p, 4, true, rng) {
					if b, _ := d.ReadFile("state.json"); string(b) != "old content" && string(b) != "new content" {
						t.Errorf("%v: state.json holds %q", d, b)
					}
				}
			}
			d := rec.Disk(rec.Len(), "durable", func(int) bool { return false })
			if b, _ := d.ReadFile("state.json"); string(b) != tc.wantAtEnd {
				t.Errorf("a power cut right after it returned leaves %q, want %q", b, tc.wantAtEnd)
			}
		})
	}
}
