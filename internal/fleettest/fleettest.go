// Package fleettest is the contract of renew.Fleet written once, as a
// conformance suite in the manner of testing/fstest.TestFS: TestFleet runs
// the same checks against any implementation. Package fleet runs it against
// its etcd implementation (on internal/etcdtest's embedded etcd), and
// renew's tests against the in-memory fake the renew tests use, so the two
// cannot drift apart unnoticed.
package fleettest

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/testpki"
	"github.com/renewkit/renewkit/lockfile"
	"github.com/renewkit/renewkit/renew"
)

// Nodes are two nodes of one fleet, empty when made.
type Nodes struct {
	// A and B are the Fleets of the two nodes, named NodeA and NodeB.
	A, B         renew.Fleet
	NodeA, NodeB string
	// Lose makes node A's lock of the lineage name lost, as when its lease
	// expires (A is paused past it): A's later writes through that lock must
	// be fenced.
	Lose func(t *testing.T, name string)
}

// TestFleet checks an implementation against renew.Fleet's contract. It
// calls newNodes once per subtest, for a fresh fleet each time.
func TestFleet(t *testing.T, newNodes func(t *testing.T) Nodes) {
	t.Run("empty", func(t *testing.T) { testEmpty(t, newNodes(t)) })
	t.Run("lock", func(t *testing.T) { testLock(t, newNodes(t)) })
	t.Run("records", func(t *testing.T) { testRecords(t, newNodes(t)) })
	t.Run("publish", func(t *testing.T) { testPublish(t, newNodes(t)) })
	t.Run("fenced", func(t *testing.T) { testFenced(t, newNodes(t)) })
	t.Run("watch", func(t *testing.T) { testWatch(t, newNodes(t)) })
}

var (
	www = renew.Certificate{Name: "www", Domains: []string{"www.example.com", "example.com"}}
	api = renew.Certificate{Name: "api", Domains: []string{"api.example.com"}}
)

// bundle issues a certificate for c's names from a throwaway CA: the bundle
// that publishes it as generation n.
func bundle(t *testing.T, n uint64, c renew.Certificate) renew.FleetBundle {
	t.Helper()
	ca, err := testpki.NewCA(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(&x509.Certificate{DNSNames: c.Domains})
	if err != nil {
		t.Fatal(err)
	}
	names := slices.Clone(c.Domains)
	slices.Sort(names)
	return renew.FleetBundle{
		FleetGeneration: renew.FleetGeneration{
			Number: n, Serial: leaf.Cert.SerialNumber.Text(16), Domains: names,
			NotBefore: leaf.Cert.NotBefore, NotAfter: leaf.Cert.NotAfter,
		},
		Cert: leaf.CertPEM, Chain: ca.PEM, Key: leaf.KeyPEM,
	}
}

func view(t *testing.T, f renew.Fleet, c renew.Certificate) renew.FleetView {
	t.Helper()
	vs, err := f.View(t.Context(), []renew.Certificate{c})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	if len(vs) != 1 || vs[0].Name != c.Name {
		t.Fatalf("View of %s: %+v, want one record named %s", c.Name, vs, c.Name)
	}
	if vs[0].Err != nil {
		t.Fatalf("View of %s: record error %v", c.Name, vs[0].Err)
	}
	return vs[0]
}

func lock(t *testing.T, f renew.Fleet, c renew.Certificate) renew.FleetLock {
	t.Helper()
	l, err := f.Lock(t.Context(), c)
	if err != nil {
		t.Fatalf("Lock %s: %v", c.Name, err)
	}
	t.Cleanup(func() { l.Unlock() })
	return l
}

// An empty fleet: a record per certificate, in order, with nothing in it;
// no current generation.
func testEmpty(t *testing.T, n Nodes) {
	vs, err := n.A.View(t.Context(), []renew.Certificate{www, api})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Name != "www" || vs[1].Name != "api" {
		t.Fatalf("View: %+v, want www then api", vs)
	}
	for _, v := range vs {
		if v.Err != nil || v.Current.Number != 0 || v.Order != nil || v.Backoff.Failures != 0 || v.ARI.Serial != "" || v.Holder != "" {
			t.Errorf("View of an empty fleet: %+v", v)
		}
	}
	b, err := n.A.Current(t.Context(), www)
	if err != nil || b.Number != 0 || b.Cert != nil || b.Key != nil {
		t.Errorf("Current of an empty fleet: %+v, %v; want generation 0", b, err)
	}
}

// One holder per lineage: the other node is told who holds it, other
// lineages are free, and an unlocked lineage can be taken.
func testLock(t *testing.T, n Nodes) {
	ctx := t.Context()
	la := lock(t, n.A, www)
	_, err := n.B.Lock(ctx, www)
	var he *lockfile.HeldError
	if !errors.Is(err, lockfile.ErrLocked) || !errors.As(err, &he) || he.Node != n.NodeA {
		t.Fatalf("Lock of a held lineage: %v, want lockfile.ErrLocked with a *lockfile.HeldError naming %s", err, n.NodeA)
	}
	if v := view(t, n.B, www); v.Holder != n.NodeA {
		t.Errorf("View's holder %q, want %s", v.Holder, n.NodeA)
	}
	lock(t, n.B, api)
	if err := la.Unlock(); err != nil {
		t.Fatal(err)
	}
	lock(t, n.B, www)
}

// What is written through the lock is what View and Record read back; View
// never returns the order's key.
func testRecords(t *testing.T, n Nodes) {
	ctx := t.Context()
	l := lock(t, n.A, www)
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	o := renew.FleetOrder{OrderURL: "https://ca.test/order/7", Domains: []string{"example.com", "www.example.com"}, Created: created, Key: []byte("order key")}
	if err := l.Journal(ctx, o); err != nil {
		t.Fatal(err)
	}
	rec, err := l.Record(ctx)
	if err != nil || rec.Err != nil {
		t.Fatalf("Record: %+v, %v", rec, err)
	}
	if r := rec.Order; r == nil || r.OrderURL != o.OrderURL || !slices.Equal(r.Domains, o.Domains) || !r.Created.Equal(created) || r.Node != n.NodeA || string(r.Key) != "order key" {
		t.Errorf("Record after Journal: order %+v, want %+v by %s with its key", rec.Order, o, n.NodeA)
	}
	if v := view(t, n.B, www); v.Order == nil || v.Order.OrderURL != o.OrderURL || v.Order.Node != n.NodeA || v.Order.Key != nil {
		t.Errorf("View after Journal: order %+v, want it without its key", v.Order)
	}
	if err := l.DropOrder(ctx); err != nil {
		t.Fatal(err)
	}
	if v := view(t, n.B, www); v.Order != nil {
		t.Errorf("View after DropOrder: order %+v", v.Order)
	}
	b := renew.FleetBackoff{Failures: 3, RetryNotBefore: created.Add(time.Hour), LastError: "acme: rate limited", FailedConfig: "cfg1"}
	if err := l.Fail(ctx, b); err != nil {
		t.Fatal(err)
	}
	if v := view(t, n.B, www).Backoff; v.Failures != b.Failures || !v.RetryNotBefore.Equal(b.RetryNotBefore) || v.LastError != b.LastError || v.FailedConfig != b.FailedConfig {
		t.Errorf("View after Fail: %+v, want %+v", v, b)
	}
	w := renew.FleetARI{Serial: "0a1b", Start: created.Add(24 * time.Hour), End: created.Add(48 * time.Hour), ExplanationURL: "https://ca.test/why", NextFetch: created.Add(6 * time.Hour)}
	if err := l.PutARI(ctx, w); err != nil {
		t.Fatal(err)
	}
	rec, err = l.Record(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string]renew.FleetARI{"View": view(t, n.B, www).ARI, "Record": rec.ARI} {
		if got.Serial != w.Serial || !got.Start.Equal(w.Start) || !got.End.Equal(w.End) || got.ExplanationURL != w.ExplanationURL || !got.NextFetch.Equal(w.NextFetch) {
			t.Errorf("%s after PutARI: %+v, want %+v", what, got, w)
		}
	}
	// Another lineage is untouched.
	if v := view(t, n.B, api); v.Order != nil || v.Backoff.Failures != 0 || v.ARI.Serial != "" {
		t.Errorf("another lineage changed: %+v", v)
	}
}

// Publish makes the generation current with its PEM, clears the journal and
// the backoff in the same write, and never goes back.
func testPublish(t *testing.T, n Nodes) {
	ctx := t.Context()
	l := lock(t, n.A, www)
	if err := l.Journal(ctx, renew.FleetOrder{OrderURL: "https://ca.test/order/1", Domains: www.Domains, Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Fail(ctx, renew.FleetBackoff{Failures: 1, RetryNotBefore: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	g := bundle(t, 1, www)
	if err := l.Publish(ctx, g); err != nil {
		t.Fatal(err)
	}
	v := view(t, n.B, www)
	if c := v.Current; c.Number != 1 || c.Serial != g.Serial || !slices.Equal(c.Domains, g.Domains) || !c.NotAfter.Equal(g.NotAfter) || c.Publisher != n.NodeA || c.Published.IsZero() {
		t.Errorf("View after Publish: %+v, want generation 1 %+v published by %s", c, g.FleetGeneration, n.NodeA)
	}
	if v.Order != nil || v.Backoff.Failures != 0 {
		t.Errorf("View after Publish: order %+v, backoff %+v; want both cleared", v.Order, v.Backoff)
	}
	cur, err := n.B.Current(ctx, www)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Number != 1 || cur.Serial != g.Serial || !bytes.Equal(cur.Cert, g.Cert) || !bytes.Equal(cur.Chain, g.Chain) || !bytes.Equal(cur.Key, g.Key) {
		t.Errorf("Current after Publish: generation %d serial %s, PEM equal: %v %v %v", cur.Number, cur.Serial,
			bytes.Equal(cur.Cert, g.Cert), bytes.Equal(cur.Chain, g.Chain), bytes.Equal(cur.Key, g.Key))
	}
	if err := l.Publish(ctx, bundle(t, 1, www)); err == nil {
		t.Error("Publish of generation 1 again succeeded: the fleet's generation went back")
	}
	if v := view(t, n.B, www); v.Current.Serial != g.Serial {
		t.Errorf("a refused publish changed the fleet: %+v", v.Current)
	}
	g2 := bundle(t, 2, www)
	if err := l.Publish(ctx, g2); err != nil {
		t.Fatal(err)
	}
	if v := view(t, n.B, www); v.Current.Number != 2 || v.Current.Serial != g2.Serial {
		t.Errorf("View after the second Publish: %+v", v.Current)
	}
}

// A lock that was lost writes nothing.
func testFenced(t *testing.T, n Nodes) {
	ctx := t.Context()
	l := lock(t, n.A, www)
	g := bundle(t, 1, www)
	if err := l.Publish(ctx, g); err != nil {
		t.Fatal(err)
	}
	n.Lose(t, www.Name)
	for name, write := range map[string]func() error{
		"publish": func() error { return l.Publish(ctx, bundle(t, 2, www)) },
		"journal": func() error {
			return l.Journal(ctx, renew.FleetOrder{OrderURL: "https://ca.test/order/stale", Domains: www.Domains, Key: []byte("k")})
		},
		"fail":       func() error { return l.Fail(ctx, renew.FleetBackoff{Failures: 9}) },
		"drop order": func() error { return l.DropOrder(ctx) },
		"ari":        func() error { return l.PutARI(ctx, renew.FleetARI{Serial: "ff", NextFetch: time.Now()}) },
	} {
		if err := write(); err == nil {
			t.Errorf("%s after the lock was lost succeeded", name)
		}
	}
	if v := view(t, n.B, www); v.Current.Number != 1 || v.Current.Serial != g.Serial || v.Order != nil || v.Backoff.Failures != 0 || v.ARI.Serial != "" {
		t.Errorf("after the refused writes: %+v, want generation 1 only", v)
	}
}

// Watch sends what another run could act on (a publish, the release of a
// lock by another node), not an ARI window nor the taking of a lock.
func testWatch(t *testing.T, n Nodes) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := n.B.Watch(ctx)
	next := func(want string) {
		t.Helper()
		select {
		case got, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed, want %s", want)
			}
			if got != want {
				t.Fatalf("watch sent %q, want %q", got, want)
			}
		case <-t.Context().Done():
			t.Fatalf("watch: no %s before the test's end", want)
		}
	}
	other := renew.Certificate{Name: "other", Domains: []string{"other.example.com"}}
	// Taking a lock and an ARI window: not sent, so the first name the
	// watch sends is the publish's.
	lo := lock(t, n.A, other)
	if err := lo.PutARI(ctx, renew.FleetARI{Serial: "0a", NextFetch: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	l := lock(t, n.A, www)
	if err := l.Publish(ctx, bundle(t, 1, www)); err != nil {
		t.Fatal(err)
	}
	next("www")
	// The release of a lock by another node is sent.
	if err := lo.Unlock(); err != nil {
		t.Fatal(err)
	}
	next("other")
}
