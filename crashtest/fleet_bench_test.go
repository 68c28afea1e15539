package crashtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/internal/etcdtest"
	"github.com/renewkit/renewkit/internal/lineagefix"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

// BenchmarkFleetNothingDue1000 is the run a fleet node's timer does almost
// every time: 1,000 lineages installed, each the fleet's current
// generation, none due. One op is one Renewer.Run over the 1,000 lineages
// with a fleet.Client on a single-member etcd cluster in this process. The
// lineages are one real issuance (the CLI, against the test CA) cloned; the
// fleet's records come from the nodes' own adoption (a first Run publishes
// each local generation as the fleet's generation 1). It reports the etcd
// range reads per op (etcd's own counter, etcd_mvcc_range_total): the
// nothing-due check must be one.
//
//	go test -run '^$' -bench FleetNothingDue1000 -benchtime 20x ./crashtest
func BenchmarkFleetNothingDue1000(b *testing.B) {
	const n = 1000
	cl := etcdtest.Start(b, 1)
	caOpts := caOptions()
	caOpts.AlwaysValid = true
	ca := testacme.New(b, caOpts)
	domains := []string{"bench.fleet.example.test", "www.bench.fleet.example.test"}
	s := newSetup(b, ca, true, certSpec{name: "l0000", domains: domains})
	s.mustRun(0)
	certs := make([]renew.Certificate, n)
	for i := range certs {
		certs[i] = renew.Certificate{Name: fmt.Sprintf("l%04d", i), Domains: domains}
		if i > 0 {
			if err := lineagefix.Clone(s.lineage("l0000"), filepath.Join(s.root, certs[i].Name)); err != nil {
				b.Fatal(err)
			}
		}
	}
	c, err := fleet.Dial(fleet.Config{
		Endpoints: cl.Endpoints(), Prefix: "/bench/", Node: "bench",
		SealKeyFile: writeFleetSealKey(b, b.TempDir(), "seal.key", 7),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := &renew.Renewer{
		Root: s.root, Issuer: refusingIssuer{}, Fleet: c, Concurrency: 8,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx := context.Background()
	start := time.Now()
	for _, res := range r.Run(ctx, certs...) {
		if !res.Outcome.OK() {
			b.Fatalf("adopting %s: %+v", res.Name, res)
		}
	}
	b.Logf("%d lineages adopted by the fleet in %v", n, time.Since(start).Round(time.Millisecond))
	recs, err := c.View(ctx, certs)
	if err != nil {
		b.Fatal(err)
	}
	for _, rec := range recs {
		if rec.Generation != 1 || rec.Err != nil {
			b.Fatalf("after adoption: %+v", rec)
		}
	}

	ranges0 := etcdRanges(b)
	b.ResetTimer()
	for b.Loop() {
		for _, res := range r.Run(ctx, certs...) {
			if res.Outcome != renew.NotDue {
				b.Fatalf("%s: %+v", res.Name, res)
			}
		}
	}
	b.StopTimer()
	ranges := float64(etcdRanges(b)-ranges0) / float64(b.N)
	b.ReportMetric(ranges, "ranges/op")
	perOp := time.Duration(b.Elapsed().Nanoseconds() / int64(b.N))
	if ranges != 1 {
		b.Errorf("a nothing-due run read etcd with %.2f range requests, want 1", ranges)
	}
	fleetFigure(b, "nothing-due check of %d lineages on one node against etcd (1 member, in process): %v per run, %.2f range reads per run (%d runs)",
		n, perOp.Round(10*time.Microsecond), ranges, b.N)
}

// etcdRanges is the etcd members' count of range requests in this process
// (every member registers into the default Prometheus registry).
func etcdRanges(tb testing.TB) int64 {
	tb.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "etcd_mvcc_range_total" {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return int64(sum)
		}
	}
	tb.Fatal("no etcd_mvcc_range_total metric: is an etcd member running in this process?")
	return 0
}

// refusingIssuer is the Issuer of a benchmark in which nothing is due: an
// order would be a bug the benchmark reports.
type refusingIssuer struct{}

func (refusingIssuer) Issue(context.Context, renew.IssueRequest, renew.OrderJournal) (*renew.Issued, error) {
	return nil, errors.New("the nothing-due benchmark ordered a certificate")
}
