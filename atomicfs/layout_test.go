package atomicfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/renameio/v2"
	"github.com/renewkit/renewkit/internal/durable"
)

// TestNeedsRecovery: a served lineage with nothing left over needs no
// recovery; each kind of leftover, and a directory Open would refuse, does.
func TestNeedsRecovery(t *testing.T) {
	euid := os.Geteuid()
	fresh := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "example.com")
		s := mustOpen(t, dir)
		mustInstallActivate(t, s, mustCA(t).mustIssue(t, 1))
		if err := os.WriteFile(filepath.Join(dir, LockFile), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Run("clean", func(t *testing.T) {
		if need, err := NeedsRecovery(fresh(t), euid); err != nil || need {
			t.Fatalf("NeedsRecovery = %v, %v; want false, nil", need, err)
		}
	})
	for _, name := range []string{pendingKeyName, ".current.tmp-x1", ".state.json123"} {
		t.Run(name, func(t *testing.T) {
			dir := fresh(t)
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if need, err := NeedsRecovery(dir, euid); err != nil || !need {
				t.Fatalf("NeedsRecovery = %v, %v; want true", need, err)
			}
		})
	}
	t.Run("renameio's own temporary file", func(t *testing.T) {
		// Whatever name renameio gives the temporary file of an
		// interrupted write, it is a leftover and Recover deletes it.
		dir := fresh(t)
		pf, err := renameio.NewPendingFile(filepath.Join(dir, StateFile), renameio.WithTempDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		defer pf.Cleanup()
		name := filepath.Base(pf.Name())
		if !leftover(name) {
			t.Fatalf("renameio's temporary name %q is not a leftover", name)
		}
		exists := map[string]bool{}
		for _, n := range renameioTargets {
			exists[n] = true
		}
		if !durable.IsTemp(name, exists) {
			t.Fatalf("Recover would not delete renameio's temporary %q", name)
		}
	})
	t.Run("group-writable", func(t *testing.T) {
		dir := fresh(t)
		if err := os.Chmod(dir, 0o775); err != nil {
			t.Fatal(err)
		}
		if need, err := NeedsRecovery(dir, euid); err != nil || !need {
			t.Fatalf("NeedsRecovery = %v, %v; want true", need, err)
		}
	})
	if _, err := NeedsRecovery(filepath.Join(t.TempDir(), "missing"), euid); err == nil {
		t.Fatal("NeedsRecovery of a missing directory: no error")
	}
}
