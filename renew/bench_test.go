package renew

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/lineagefix"
)

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
			if err := lineagefix.Clone(filepath.Join(root, "l0"), filepath.Join(root, certs[i].Name)); err != nil {
				b.Fatal(err)
			}
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
		key, err := EC256.Generate()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ca.Issue(ctx, IssueRequest{Name: "x", Domains: []string{"a.example.test"}, Key: key}, noop); err != nil {
			b.Fatal(err)
		}
	}
}
