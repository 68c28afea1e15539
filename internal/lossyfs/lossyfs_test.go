//go:build linux

package lossyfs

import (
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func mount(t *testing.T) (*FS, string, string) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	backing, mnt := t.TempDir(), t.TempDir()
	f, err := Mount(backing, mnt)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return f, backing, mnt
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func syncPath(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	must(t, f.Sync())
}

func none(int) bool { return false }

// TestReplayOfEverythingIsTheBackingDirectory: replaying every recorded
// operation gives what the backing directory holds, for a mix of every
// operation the model knows (directory renames, symlinks, hard links,
// unlink while open, O_TRUNC, chmod).
func TestReplayOfEverythingIsTheBackingDirectory(t *testing.T) {
	f, backing, mnt := mount(t)
	p := func(s string) string { return filepath.Join(mnt, s) }
	must(t, os.WriteFile(p("before"), []byte("old"), 0o644))
	f.Checkpoint()
	must(t, os.MkdirAll(p("d/e"), 0o755))
	must(t, os.WriteFile(p("d/e/x"), []byte("hello"), 0o640))
	must(t, os.Rename(p("d"), p("d2")))
	must(t, os.Symlink("d2/e/x", p("link")))
	must(t, os.Link(p("d2/e/x"), p("hard")))
	must(t, os.WriteFile(p("before"), []byte("n"), 0o644)) // O_TRUNC
	must(t, os.Chmod(p("before"), 0o600))
	h, err := os.OpenFile(p("gone"), os.O_CREATE|os.O_WRONLY, 0o644)
	must(t, err)
	must(t, os.Remove(p("gone")))
	_, err = h.Write([]byte("unlinked"))
	must(t, err)
	must(t, h.Close())
	must(t, os.Rename(p("hard"), p("d2/hard")))
	must(t, os.RemoveAll(p("d2/e")))

	rec := f.Recording()
	want, err := scan(backing, func() func() NodeID { n := NodeID(0); return func() NodeID { n++; return n } }())
	must(t, err)
	if got := rec.Final(); got.Digest != want.digest(nil) {
		t.Errorf("replay of every operation differs from the backing directory")
	}
	out := t.TempDir()
	must(t, rec.Final().Materialize(out))
	if b, err := os.ReadFile(filepath.Join(out, "d2", "hard")); err != nil || string(b) != "hello" {
		t.Errorf("d2/hard: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(out, "before")); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 1 {
		t.Errorf("before: %v, %v", fi, err)
	}
}

// TestPersistenceModel checks the rules of the package documentation one
// by one, on the disk after a cut that keeps only what is durable.
func TestPersistenceModel(t *testing.T) {
	f, _, mnt := mount(t)
	p := func(s string) string { return filepath.Join(mnt, s) }
	must(t, os.Mkdir(p("dir"), 0o755))
	must(t, os.WriteFile(p("dir/old"), []byte("old data"), 0o644))
	f.Checkpoint()

	durable := func(path string) (string, bool) {
		rec := f.Recording()
		b, ok := rec.Disk(rec.Len(), "durable", none).ReadFile(path)
		return string(b), ok
	}
	// Data without fsync is lost; the entry without a directory fsync too.
	h, err := os.Create(p("dir/new"))
	must(t, err)
	_, err = h.Write([]byte("new data"))
	must(t, err)
	if _, ok := durable("dir/new"); ok {
		t.Errorf("a created file survives without an fsync of its directory")
	}
	syncPath(t, p("dir"))
	if b, ok := durable("dir/new"); !ok || b != "" {
		t.Errorf("after fsync of the directory only: %q, %v; want an empty file", b, ok)
	}
	// fdatasync makes data durable.
	must(t, syscall.Fdatasync(int(h.Fd())))
	if b, _ := durable("dir/new"); b != "new data" {
		t.Errorf("after fdatasync: %q", b)
	}
	must(t, h.Close())
	// A rename is durable only with the directory's fsync; before it, the
	// old content is back.
	must(t, os.Rename(p("dir/new"), p("dir/old")))
	if b, _ := durable("dir/old"); b != "old data" {
		t.Errorf("an unsynced rename survived: %q", b)
	}
	syncPath(t, p("dir"))
	if b, _ := durable("dir/old"); b != "new data" {
		t.Errorf("a synced rename was lost: %q", b)
	}
	// O_TRUNC without fsync: the old data stays.
	must(t, os.WriteFile(p("dir/old"), []byte("x"), 0o644))
	if b, _ := durable("dir/old"); b != "new data" {
		t.Errorf("an unsynced truncate and write survived: %q", b)
	}
	// The "all" disk is what the process saw.
	rec := f.Recording()
	if b, _ := rec.Disk(rec.Len(), "all", func(int) bool { return true }).ReadFile("dir/old"); string(b) != "x" {
		t.Errorf("the disk keeping everything has %q", b)
	}
	if b, _ := rec.Volatile(rec.Len(), "dir/old"); string(b) != "x" {
		t.Errorf("Volatile: %q", b)
	}
}

// TestSeqCutOf: an event whose position Seq gave is at the cut point of the
// recording that separates the operations before it from those after,
// across a checkpoint and in a recording with operations left out.
func TestSeqCutOf(t *testing.T) {
	f, _, mnt := mount(t)
	p := func(s string) string { return filepath.Join(mnt, s) }
	must(t, os.WriteFile(p("a"), []byte("1"), 0o644))
	early := f.Seq() // before the checkpoint
	f.Checkpoint()
	if f.Seq() != early {
		t.Fatalf("a checkpoint moved Seq from %d to %d", early, f.Seq())
	}
	must(t, os.Mkdir(p("d"), 0o755))
	syncPath(t, p("d"))
	mid := f.Seq()
	must(t, os.WriteFile(p("d/b"), []byte("2"), 0o644))
	rec := f.Recording()
	late := f.Seq() + 5

	cut := rec.CutOf(mid)
	if cut <= 0 || cut >= rec.Len() {
		t.Fatalf("CutOf(mid) = %d, want inside 1..%d", cut, rec.Len()-1)
	}
	for i := range rec.Len() {
		isMkdirOrSync := rec.Op(i).Path == "d"
		if before := i < cut; before != isMkdirOrSync {
			t.Errorf("op %d (%v): before the event = %v", i, rec.Op(i), before)
		}
	}
	if c := rec.CutOf(early); c > 0 {
		t.Errorf("an event before the checkpoint is at cut %d, want <= 0", c)
	}
	if c := rec.CutOf(late); c <= rec.Len() {
		t.Errorf("an event after the recording is at cut %d, want > %d", c, rec.Len())
	}
	// Leave out the fsync of d: the event is one operation earlier.
	fsync := -1
	for i := range rec.Len() {
		if rec.Op(i).Kind == OpFsync {
			fsync = i
		}
	}
	if fsync < 0 || fsync >= cut {
		t.Fatalf("no fsync before the event in %d operations", rec.Len())
	}
	w := rec.Without(fsync)
	if c := w.CutOf(mid); c != cut-1 {
		t.Errorf("without the fsync: CutOf = %d, want %d", c, cut-1)
	}
	if c := w.CutOf(late); c != rec.CutOf(late)-1 {
		t.Errorf("without the fsync, after the end: CutOf = %d, want %d", c, rec.CutOf(late)-1)
	}
}

// TestDisksSystematic: with single set, Disks keeps of the unsynced
// operations none, all, each alone, all but each, and each prefix in
// program order, without duplicates, whatever the seed.
func TestDisksSystematic(t *testing.T) {
	f, _, mnt := mount(t)
	f.Checkpoint()
	names := []string{"a", "b", "c", "d"}
	for _, n := range names {
		must(t, os.Mkdir(filepath.Join(mnt, n), 0o755))
	}
	rec := f.Recording()
	if n := len(rec.Loose(rec.Len())); n != len(names) {
		t.Fatalf("%d loose operations, want %d", n, len(names))
	}
	present := func(d Disk) string {
		out := ""
		for _, n := range names {
			if d.t.lookup(n) != 0 {
				out += n
			}
		}
		return out
	}
	var first map[string]string
	for seed := range uint64(5) {
		got := map[string]string{}
		for _, d := range rec.Disks(rec.Len(), 0, true, rand.New(rand.NewPCG(seed, 0))) {
			got[d.Kind] = present(d)
		}
		// first-1 is only-0 and first-3 is except-3: dropped as duplicates.
		want := map[string]string{
			"durable": "", "all": "abcd",
			"only-0": "a", "only-1": "b", "only-2": "c", "only-3": "d",
			"except-0": "bcd", "except-1": "acd", "except-2": "abd", "except-3": "abc",
			"first-2": "ab",
		}
		if !maps.Equal(got, want) {
			t.Fatalf("seed %d: disks %v, want %v", seed, got, want)
		}
		if first != nil && !maps.Equal(got, first) {
			t.Fatalf("seed %d: the systematic disks depend on the seed", seed)
		}
		first = got
	}
}
