package durable

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, []byte("one"), 0o666); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o666 {
		t.Errorf("mode %v, want exactly 0666 whatever the umask", fi.Mode().Perm())
	}
	if err := WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Errorf("content %q", b)
	}
	if err := WriteFile(path, nil, fs.ModeDir|0o755); err == nil {
		t.Error("WriteFile with a non-permission mode bit succeeded")
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
	// Failure after the temporary file exists: it is removed, the target intact.
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "d"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFile over a directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"d", "f"}) {
		t.Errorf("directory holds %q, want [d f]: temporary file left behind", names)
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "account.key")
	for _, n := range []string{".account.key123", ".account.key9", "account.key", ".other5", ".account.keyx"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveTemps(target, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Fatalf("removed %v", removed)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 3 {
		t.Fatalf("left %v", left)
	}
}

// TestRemoveTempsBefore: with a cutoff, only temporary files older than it
// go; a young one (a concurrent write in progress) stays.
func TestRemoveTempsBefore(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "renewkit.prom")
	old := time.Now().Add(-2 * time.Hour)
	for _, n := range []string{".renewkit.prom4242", ".renewkit.prom77"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(filepath.Join(dir, ".renewkit.prom4242"), old, old); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveTemps(target, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || filepath.Base(removed[0]) != ".renewkit.prom4242" {
		t.Fatalf("removed %v, want the old temporary file only", removed)
	}
	if _, err := os.Stat(filepath.Join(dir, ".renewkit.prom77")); err != nil {
		t.Fatalf("the young temporary file: %v", err)
	}
}

// TestIsTempMatchesRenameio: whatever name renameio gives the temporary file
// of a write, IsTemp recognizes it, so that RemoveTemps and atomicfs's
// Recover find what a killed write left.
func TestIsTempMatchesRenameio(t *testing.T) {
	dir := t.TempDir()
	for _, target := range []string{"state.json", "account.key", "v2"} {
		pf, err := newPendingFile(filepath.Join(dir, target))
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(pf.Name())
		if err := pf.Cleanup(); err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(pf.Name()) != dir {
			t.Errorf("temporary file %s is not beside its target in %s", pf.Name(), dir)
		}
		if !IsTemp(name, map[string]bool{target: true}) {
			t.Errorf("IsTemp(%q) = false for renameio's temporary file of %s", name, target)
		}
		if IsTemp(name, map[string]bool{"other": true}) {
			t.Errorf("IsTemp(%q) = true for another target", name)
		}
	}
}
