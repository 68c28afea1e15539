//go:build unix

package atomicfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/renewkit/renewkit/internal/safefile"
)

// TestStoreReadsThroughTheLimit: the pending key and generation files are
// read with safefile.ReadFile.
func TestStoreReadsThroughTheLimit(t *testing.T) {
	ca := mustCA(t)
	dir := filepath.Join(t.TempDir(), "l")
	s := mustOpen(t, dir)
	if err := syscall.Mkfifo(filepath.Join(dir, pendingKeyName), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PendingKey(); !errors.Is(err, safefile.ErrNotRegular) {
		t.Errorf("PendingKey of a FIFO: err = %v, want safefile.ErrNotRegular", err)
	}
	g, err := s.Install(ca.mustIssue(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(g.Dir, KeyFile)
	if err := os.Truncate(key, safefile.MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(g); !errors.Is(err, safefile.ErrTooLarge) {
		t.Errorf("Read of a generation with a huge key: err = %v, want safefile.ErrTooLarge", err)
	}
}

// TestOpenRefusesSymlinkedLineage: a lineage directory that is a symbolic
// link was followed; it is refused like the other StrictModes failures.
// The storage root above it may be a link.
func TestOpenRefusesSymlinkedLineage(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	mustOpen(t, real)
	link := filepath.Join(base, "link")
	symlink(t, "real", link)
	if _, err := Open(link, Modes{}); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Open(symlink) err = %v, want ErrInsecure about a symbolic link", err)
	}
	rootLink := filepath.Join(base, "root")
	symlink(t, base, rootLink)
	if _, err := Open(filepath.Join(rootLink, "real"), Modes{}); err != nil {
		t.Fatalf("Open through a symlinked root: %v", err)
	}
}

// TestOpenRefusesInsecureGenerations: generations/ writable by others let
// another user plant a generation that was then rolled forward.
func TestOpenRefusesInsecureGenerations(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "l")
	mustOpen(t, dir)
	gens := filepath.Join(dir, generationsName)
	chmod(t, gens, 0o777)
	if _, err := Open(dir, Modes{}); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), gens) {
		t.Fatalf("err = %v, want ErrInsecure naming %s", err, gens)
	}
	chmod(t, gens, 0o755)
	if err := os.Remove(gens); err != nil {
		t.Fatal(err)
	}
	symlink(t, t.TempDir(), gens)
	if _, err := Open(dir, Modes{}); !errors.Is(err, ErrInsecure) {
		t.Fatalf("generations/ as a symlink: err = %v, want ErrInsecure", err)
	}
}

// TestRecoverLeavesUntrustedGenerationsOut: a complete generation newer
// than current whose directory or files others could write is reported as
// Untrusted, never as Newer (which the caller rolls forward).
func TestRecoverLeavesUntrustedGenerationsOut(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, g Generation)
	}{
		{"directory writable by others", func(t *testing.T, g Generation) { chmod(t, g.Dir, 0o777) }},
		{"key writable by group", func(t *testing.T, g Generation) { chmod(t, filepath.Join(g.Dir, KeyFile), 0o660) }},
		{"chain writable by others", func(t *testing.T, g Generation) { chmod(t, filepath.Join(g.Dir, ChainFile), 0o646) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ca := mustCA(t)
			dir := filepath.Join(t.TempDir(), "l")
			s := mustOpen(t, dir)
			g1, err := s.Install(ca.mustIssue(t, 1))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Activate(g1); err != nil {
				t.Fatal(err)
			}
			g2, err := s.Install(ca.mustIssue(t, 2))
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, g2)
			rep, err := s.Recover()
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Newer) != 0 {
				t.Errorf("Newer = %v, want none", rep.Newer)
			}
			if len(rep.Untrusted) != 1 || rep.Untrusted[0].Seq != 2 || !errors.Is(rep.Untrusted[0].Err, ErrInsecure) {
				t.Errorf("Untrusted = %+v, want generation 2 with ErrInsecure", rep.Untrusted)
			}
		})
	}
}

// TestInstallAtTheEndOfTheGenerationRange: a generation named near the
// integer maximum made the next number overflow and broke the lineage for
// good. Such a name is not a generation; the real end of the range is an
// error saying so.
func TestInstallAtTheEndOfTheGenerationRange(t *testing.T) {
	ca := mustCA(t)
	dir := filepath.Join(t.TempDir(), "l")
	s := mustOpen(t, dir)
	gens := filepath.Join(dir, generationsName)
	if err := os.Mkdir(filepath.Join(gens, "9223372036854775807"), 0o755); err != nil {
		t.Fatal(err)
	}
	g, err := s.Install(ca.mustIssue(t, 1))
	if err != nil || g.Seq != 1 {
		t.Fatalf("Install beside an out-of-range name = %+v, %v; want generation 1", g, err)
	}
	if err := s.Activate(g); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(gens, formatSeq(maxGeneration)), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install(ca.mustIssue(t, 2)); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("Install past the highest generation: err = %v, want the range exhausted", err)
	}
	if cur, err := s.Current(); err != nil || cur.Seq != 1 {
		t.Errorf("Current = %+v, %v after the refused install", cur, err)
	}
}
