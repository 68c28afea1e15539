//go:build unix

package atomicfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/renewkit/renewkit/internal/durable"
)

// BenchmarkInstall measures one generation of five files, all fsyncs included
// (five files, the temporary directory, generations/). Each installed generation
// is removed outside the timer so that generations/ does not grow.
func BenchmarkInstall(b *testing.B) {
	ca := mustCA(b)
	f := ca.mustIssue(b, 1)
	s := mustOpen(b, filepath.Join(b.TempDir(), "example.com"))
	mustInstallActivate(b, s, f)
	b.ReportAllocs()
	for b.Loop() {
		g, err := s.Install(f)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(g.Dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkActivate measures the switch of current between two generations,
// including the fsync of the lineage directory.
func BenchmarkActivate(b *testing.B) {
	ca := mustCA(b)
	s := mustOpen(b, filepath.Join(b.TempDir(), "example.com"))
	g1 := mustInstallActivate(b, s, ca.mustIssue(b, 1))
	g2 := mustInstallActivate(b, s, ca.mustIssue(b, 2))
	gens := [2]Generation{g1, g2}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Activate(gens[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCurrent measures Current on a served lineage: one readlink and one
// lstat.
func BenchmarkCurrent(b *testing.B) {
	ca := mustCA(b)
	s := mustOpen(b, filepath.Join(b.TempDir(), "example.com"))
	want := mustInstallActivate(b, s, ca.mustIssue(b, 1))
	b.ReportAllocs()
	for b.Loop() {
		g, err := s.Current()
		if err != nil || g.Seq != want.Seq {
			b.Fatalf("Current = %v, %v", g, err)
		}
	}
}

// BenchmarkOpenCurrent is the per-lineage cost of a renewal run with nothing to
// do, as far as this package is concerned: Open an existing lineage (one stat,
// no write) and read Current.
func BenchmarkOpenCurrent(b *testing.B) {
	ca := mustCA(b)
	dir := filepath.Join(b.TempDir(), "example.com")
	mustInstallActivate(b, mustOpen(b, dir), ca.mustIssue(b, 1))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(dir, Modes{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Current(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteFile measures replacing a 2 KiB file (two fsyncs).
func BenchmarkWriteFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "state.json")
	data := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if err := durable.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
