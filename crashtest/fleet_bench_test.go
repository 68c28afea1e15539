package crashtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
// range reads per op (etcd's own counter, etcd_mvcc_range_total, from its
// /metrics): the
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
		if rec.Current.Number != 1 || rec.Err != nil {
			b.Fatalf("after adoption: %+v", rec)
		}
	}

	b.Run("fleet", func(b *testing.B) {
		ranges0 := etcdRanges(b, cl)
		for b.Loop() {
			notDue(b, r, certs)
		}
		ranges := float64(etcdRanges(b, cl)-ranges0) / float64(b.N)
		b.ReportMetric(ranges, "ranges/op")
		if ranges != 1 {
			b.Errorf("a nothing-due run read etcd with %.2f range requests, want 1", ranges)
		}
		if b.N > 1 { // not the go command's first, one-op probe
			fleetFigure(b, "nothing-due check of %d lineages on one node against etcd (1 member, in process): %v per run, %.2f range reads per run (%d runs)",
				n, (b.Elapsed() / time.Duration(b.N)).Round(10*time.Microsecond), ranges, b.N)
		}
	})
	// The same lineages without the fleet: what fleet mode adds.
	single := &renew.Renewer{Root: r.Root, Issuer: r.Issuer, Concurrency: r.Concurrency, Logger: r.Logger}
	b.Run("single-node", func(b *testing.B) {
		for b.Loop() {
			notDue(b, single, certs)
		}
		if b.N > 1 {
			fleetFigure(b, "the same check without the fleet (single-node path): %v per run (%d runs)",
				(b.Elapsed() / time.Duration(b.N)).Round(10*time.Microsecond), b.N)
		}
	})
}

// notDue runs r over certs and fails unless every one is not due.
func notDue(b *testing.B, r *renew.Renewer, certs []renew.Certificate) {
	for _, res := range r.Run(context.Background(), certs...) {
		if res.Outcome != renew.NotDue {
			b.Fatalf("%s: %+v", res.Name, res)
		}
	}
}

// etcdRanges is the range requests etcd counted (etcd_mvcc_range_total),
// from the member's /metrics on its client URL. The counter is the
// process's (the members of one process share it), so nothing else may
// use etcd in this process meanwhile: a benchmark runs alone.
func etcdRanges(tb testing.TB, cl *etcdtest.Cluster) int64 {
	tb.Helper()
	resp, err := http.Get(cl.Endpoints()[0] + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_mvcc_range_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				tb.Fatalf("etcd_mvcc_range_total %q: %v", v, err)
			}
			return int64(f)
		}
	}
	tb.Fatalf("no etcd_mvcc_range_total in etcd's /metrics (%v)", sc.Err())
	return 0
}

// refusingIssuer is the Issuer of a benchmark in which nothing is due: an
// order would be a bug the benchmark reports.
type refusingIssuer struct{}

func (refusingIssuer) Issue(context.Context, renew.IssueRequest, func(context.Context, renew.InFlight) error) (*renew.Issued, error) {
	return nil, errors.New("the nothing-due benchmark ordered a certificate")
}

// Resume makes refusingIssuer a Resumer, which fleet mode requires; it
// refuses too: nothing is journaled in the benchmark.
func (refusingIssuer) Resume(context.Context, renew.InFlight) (*renew.Issued, error) {
	return nil, errors.New("the nothing-due benchmark resumed an order")
}
