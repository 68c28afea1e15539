package renew

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// cloneLineage makes dst a copy of the lineage src with one generation:
// generation files hard-linked (they are immutable), links recreated,
// state.json copied. It is how the benchmarks build thousands of lineages
// without thousands of issuances.
func cloneLineage(tb testing.TB, src, dst string) {
	tb.Helper()
	gen := filepath.Join("generations", "000001")
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dst, gen), 0o755))
	for _, f := range []string{"cert.pem", "chain.pem", "fullchain.pem", "privkey.pem", "combined.pem"} {
		must(os.Link(filepath.Join(src, gen, f), filepath.Join(dst, gen, f)))
		must(os.Symlink(filepath.Join("current", f), filepath.Join(dst, f)))
	}
	must(os.Symlink(gen, filepath.Join(dst, "current")))
	b, err := os.ReadFile(filepath.Join(src, "state.json"))
	must(err)
	must(os.WriteFile(filepath.Join(dst, "state.json"), b, 0o644))
}

// notDueFleet returns a Renewer and n certificates, all installed and none
// due.
func notDueFleet(b *testing.B, n int) (*Renewer, []Certificate) {
	b.Helper()
	base := b.TempDir()
	ca := newFakeCA(b, filepath.Join(base, "ca"))
	root := filepath.Join(base, "root")
	r := &Renewer{Root: root, Issuer: ca}
	tmpl := Certificate{Name: "l0", Domains: []string{"a.example.test", "b.example.test"}}
	if res := r.Run(context.Background(), tmpl); res[0].Outcome != Renewed {
		b.Fatalf("fixture: %+v", res[0])
	}
	certs := make([]Certificate, n)
	for i := range certs {
		certs[i] = tmpl
		certs[i].Name = fmt.Sprintf("l%d", i)
		if i > 0 {
			cloneLineage(b, filepath.Join(root, "l0"), filepath.Join(root, certs[i].Name))
		}
	}
	return r, certs
}

// BenchmarkRunNotDue is the run a twice-daily timer does almost every time:
// every lineage installed, none due. One op is one Run over the fleet.
func BenchmarkRunNotDue(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("lineages=%d", n), func(b *testing.B) {
			r, certs := notDueFleet(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for _, res := range r.Run(ctx, certs...) {
					if res.Outcome != NotDue {
						b.Fatalf("%+v", res)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/lineage")
		})
	}
}

// BenchmarkRenewalOverhead measures the Renewer's own work per renewal
// (locking, recovery checks, verification, every write and fsync, the
// journal) against a CA that costs almost nothing: the fake CA signs in
// process. Subtract BenchmarkFakeIssue to get the Renewer's share.
func BenchmarkRenewalOverhead(b *testing.B) {
	base := b.TempDir()
	ca := newFakeCA(b, filepath.Join(base, "ca"))
	r := &Renewer{Root: filepath.Join(base, "root"), Issuer: ca, Keep: 2}
	c := Certificate{Name: "bench", Domains: []string{"a.example.test"}, Force: true}
	ctx := context.Background()
	b.ReportAllocs()
	var d []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if res := r.Run(ctx, c); res[0].Outcome != Renewed {
			b.Fatalf("%+v", res[0])
		}
		d = append(d, time.Since(t0))
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(d[len(d)*9/10].Microseconds())/1000, "p90-ms")
}

// BenchmarkFakeIssue is the fake CA's own cost per certificate (key
// generation and signing), the part of BenchmarkRenewalOverhead that is not
// the Renewer's.
func BenchmarkFakeIssue(b *testing.B) {
	ca := newFakeCA(b, b.TempDir())
	ctx := context.Background()
	noop := func(context.Context, InFlight) error { return nil }
	for b.Loop() {
		key, err := GenerateKey(EC256)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ca.Issue(ctx, IssueRequest{Name: "x", Domains: []string{"a.example.test"}, Key: key}, noop); err != nil {
			b.Fatal(err)
		}
	}
}
