package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/renew/acmetest"

	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// Two renew.Renewers with Roots and ACME accounts of their own share an
// embedded etcd through two Clients: the fleet path of renew on the real
// adapter. They run concurrently; one order per renewal, and both serve
// the same certificate and key.
func TestRenewersShareOneOrder(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	caPEM, err := os.ReadFile(ca.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	domains := []string{"shared.example.test", "www.shared.example.test"}
	var renewers []*renew.Renewer
	for i, f := range []*Client{a, b} {
		dir := filepath.Join(base, string(rune('a'+i)))
		iss, err := acmeissuer.New(t.Context(), acmeissuer.Config{DirectoryURL: ca.DirectoryURL(), AgreeTOS: true, AccountDir: filepath.Join(dir, "account"), CARootsPEM: caPEM, HTTP01: &acmeissuer.HTTP01{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { iss.Close() })
		renewers = append(renewers, &renew.Renewer{Root: filepath.Join(dir, "certs"), Issuer: iss, Roots: ca.RootPool(), Fleet: f})
	}
	c := renew.Certificate{Name: "shared", Domains: domains, Profile: "default"}
	for round := 1; round <= 2; round++ {
		results := make([]renew.Result, 2)
		var wg sync.WaitGroup
		for i, r := range renewers {
			cc := c
			cc.Force = round == 2 && i == 0
			wg.Go(func() { results[i] = r.Run(context.Background(), cc)[0] })
		}
		wg.Wait()
		for i, r := range renewers {
			if results[i].Outcome == renew.Locked || results[i].FleetGeneration != uint64(round) {
				results[i] = r.Run(context.Background(), c)[0] // ran before the other published
			}
			if res := results[i]; !res.Outcome.OK() || res.FleetGeneration != uint64(round) {
				t.Fatalf("round %d, node %d: %v (fleet generation %d)", round, i, res, res.FleetGeneration)
			}
		}
		if st := ca.Stats(domains...); st.Orders != round || st.Issued != round {
			t.Fatalf("round %d: %d orders, %d issued", round, st.Orders, st.Issued)
		}
		var keys, certs [][]byte
		for _, r := range renewers {
			k, err := os.ReadFile(filepath.Join(r.Root, "shared", "privkey.pem"))
			if err != nil {
				t.Fatal(err)
			}
			crt, err := os.ReadFile(filepath.Join(r.Root, "shared", "cert.pem"))
			if err != nil {
				t.Fatal(err)
			}
			keys, certs = append(keys, k), append(certs, crt)
		}
		if !bytes.Equal(keys[0], keys[1]) || !bytes.Equal(certs[0], certs[1]) {
			t.Fatalf("round %d: the nodes serve different certificates or keys", round)
		}
	}
	// Nothing due: one View each, no lock.
	for _, r := range renewers {
		if res := r.Run(context.Background(), c)[0]; res.Outcome != renew.NotDue || res.FleetGeneration != 2 {
			t.Fatalf("nothing due: %v", res)
		}
	}
}

// fleetNode is one machine of an in-process fleet: a Renewer with its own
// root, issuer (its own ACME account) and fleet Client.
type fleetNode struct {
	name string
	r    *renew.Renewer

	mu       sync.Mutex
	reloads  []string    // serials the deploy hook saw, in order
	reloaded chan string // each of them, for a test that waits for one
}

// startNodes returns n nodes on the fleet of cfg and the CA ca, each
// fetching the CA's renewal window on every run (so that a window set
// between rounds makes the certificate due on every node).
func startNodes(t *testing.T, n int, cfg Config, ca *acmetest.CA) []*fleetNode {
	t.Helper()
	nodes := make([]*fleetNode, n)
	for i := range nodes {
		ncfg := cfg
		ncfg.Node = fmt.Sprintf("node-%d", i)
		iss, err := acmeissuer.New(t.Context(), ca.IssuerConfig(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { iss.Close() })
		nodes[i] = &fleetNode{name: ncfg.Node, reloaded: make(chan string, 16), r: &renew.Renewer{
			Root: t.TempDir(), Issuer: iss, Fleet: dial(t, ncfg), Roots: ca.ChainRoots(),
			ARIInterval: time.Nanosecond,
		}}
	}
	return nodes
}

// cert is the node's certificate of lineage www, with its deploy hook.
func (n *fleetNode) cert(domains []string) renew.Certificate {
	return renew.Certificate{Name: "www", Domains: domains, Hooks: []hooks.Hook{
		hooks.Func("reload", func(_ context.Context, ev hooks.Event) error {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.reloads = append(n.reloads, ev.Serial)
			select {
			case n.reloaded <- ev.Serial:
			default:
			}
			return nil
		}),
	}}
}

// TestRenewersDueTogether: three Renewers sharing one etcd and one CA through the
// adapter. Every due renewal is exactly one order fleet-wide, and every node
// ends up serving that certificate with its key, its hook run for it.
func TestRenewersDueTogether(t *testing.T) {
	cl := startCluster(t, 1)
	cfg := cl.config(t, "")
	ca := acmetest.New(t, acmetest.Options{AlwaysValid: true})
	ctx := t.Context()
	domains := []string{"fleet.test", "www.fleet.test"}

	nodes := startNodes(t, 3, cfg, ca)
	// round runs every node at once and returns their results.
	round := func() []renew.Result {
		results := make([]renew.Result, len(nodes))
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Go(func() {
				results[i] = n.r.Run(ctx, n.cert(domains))[0]
			})
		}
		wg.Wait()
		return results
	}
	outcomes := func(rs []renew.Result) string {
		var s []string
		for _, r := range rs {
			s = append(s, string(r.Outcome))
		}
		return strings.Join(s, " ")
	}
	// renewal runs a round in which the certificate is due on every node,
	// then a round in which it is not, and checks the fleet converged on
	// one new certificate.
	renewal := func(want int) string {
		t.Helper()
		first := round()
		renewed := 0
		for _, r := range first {
			switch r.Outcome {
			case renew.Renewed:
				renewed++
			case renew.Locked, renew.Recovered:
			default:
				t.Errorf("renewal %d: %s: %v", want, r.Outcome, r.Err)
			}
		}
		if renewed != 1 {
			t.Errorf("renewal %d: outcomes %s, want exactly one renewed", want, outcomes(first))
		}
		second := round()
		serial := second[0].Serial
		for i, r := range second {
			if (r.Outcome != renew.NotDue && r.Outcome != renew.Recovered) || r.Serial != serial || serial == "" || r.FleetGeneration != uint64(want) {
				t.Errorf("renewal %d, the round after: %s: %s serial %q fleet generation %d (%v), want every node not due or synced to one serial, generation %d",
					want, nodes[i].name, r.Outcome, r.Serial, r.FleetGeneration, r.Err, want)
			}
		}
		if st := ca.Stats(domains...); st.Orders != want || st.Issued != want {
			t.Errorf("after renewal %d: the CA saw %d orders and issued %d, want %d: one order per renewal fleet-wide", want, st.Orders, st.Issued, want)
		}
		t.Logf("renewal %d: %s, then %s: serial %s", want, outcomes(first), outcomes(second), serial)
		return serial
	}

	s1 := renewal(1)
	// The CA says: renew now. Every node finds the certificate due.
	snap, err := served.Check(filepath.Join(nodes[0].r.Root, "www"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := ca.SetRenewalWindow(snap.Leaf, now.Add(-2*time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	s2 := renewal(2)
	if s2 == s1 {
		t.Fatalf("the second renewal kept serial %s", s1)
	}

	// Every node serves the fleet's certificate with its key, and reloaded
	// its server for each generation.
	for _, n := range nodes {
		snap, err := served.Check(filepath.Join(n.r.Root, "www"))
		if err != nil {
			t.Errorf("%s serves: %v", n.name, err)
			continue
		}
		if err := snap.Verify(ca.ChainRoots()); err != nil || served.Serial(snap.Leaf) != s2 {
			t.Errorf("%s serves serial %s (%v), want %s", n.name, served.Serial(snap.Leaf), err, s2)
		}
		n.mu.Lock()
		if !slices.Contains(n.reloads, s1) || !slices.Contains(n.reloads, s2) {
			t.Errorf("%s reloaded for %v, want %s and %s", n.name, n.reloads, s1, s2)
		}
		n.mu.Unlock()
	}

	// A garbage record in etcd: every node fails naming its key, and keeps
	// serving what it has.
	c := nodes[0].r.Fleet.(*Client)
	metaKey := c.keys.state("www", KindMeta)
	good, err := c.cli.Get(ctx, metaKey)
	if err != nil || len(good.Kvs) != 1 {
		t.Fatalf("get %s: %v", metaKey, err)
	}
	if _, err := c.cli.Put(ctx, metaKey, "\x00garbage"); err != nil {
		t.Fatal(err)
	}
	for i, r := range round() {
		if r.Outcome != renew.Failed || r.Err == nil || !strings.Contains(r.Err.Error(), metaKey) {
			t.Errorf("%s with a garbage record: %s %v, want failed naming %s", nodes[i].name, r.Outcome, r.Err, metaKey)
		}
		snap, err := served.Check(filepath.Join(nodes[i].r.Root, "www"))
		if err != nil || snap.Serial != s2 {
			t.Errorf("%s with a garbage record serves %v (%v), want %s intact", nodes[i].name, snap.Serial, err, s2)
		}
	}
	if st := ca.Stats(domains...); st.Orders != 2 {
		t.Errorf("a garbage record made the fleet order: %d orders", st.Orders)
	}
}

// TestServeInstallsPublished: a node in Serve installs a generation another
// node publishes as soon as it is published (the fleet's watch), not at its
// next timer, hours away.
func TestServeInstallsPublished(t *testing.T) {
	cl := startCluster(t, 1)
	ca := acmetest.New(t, acmetest.Options{AlwaysValid: true})
	nodes := startNodes(t, 2, cl.config(t, ""), ca)
	server, renewer := nodes[0], nodes[1]
	server.r.ARIInterval = 0 // its timer: hours away
	serverRuns := &runCounter{}
	server.r.Observer = serverRuns
	domains := []string{"serve.test"}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	waitReload := func(serial string) time.Time {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case s := <-server.reloaded:
				if s == serial {
					return time.Now()
				}
			case <-timeout:
				server.mu.Lock()
				defer server.mu.Unlock()
				t.Fatalf("the serving node did not install serial %s within 60s (reloads %v)", serial, server.reloads)
			}
		}
	}

	first := renewer.r.Run(ctx, renewer.cert(domains))[0]
	if first.Outcome != renew.Renewed {
		t.Fatalf("first issuance: %v", first)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.r.Serve(ctx, server.cert(domains)) }()
	waitReload(first.Serial) // Serve's first round syncs; its watch runs from before it

	c := renewer.cert(domains)
	c.Force = true
	start := time.Now()
	// The serving node runs whenever its watch sees the fleet's records
	// change (the first issuance's, its own sync's), and holds the fleet
	// lock while it does: the forced run may find it held, which is
	// correct. It then waits for that run to end and tries again.
	var second renew.Result
	for {
		before := serverRuns.count()
		second = renewer.r.Run(ctx, c)[0]
		if second.Outcome != renew.Locked || second.LockNode != server.name {
			break
		}
		t.Logf("forced run: %s; waiting for the serving node's run to end", second.Reason)
		serverRuns.waitPast(t, before)
	}
	if second.Outcome != renew.Renewed || second.Serial == first.Serial {
		t.Fatalf("second issuance: %v", second)
	}
	installed := waitReload(second.Serial)
	t.Logf("published and installed on the serving node %v after the renewing run began", installed.Sub(start).Round(time.Millisecond))
	cancel()
	if err := <-serveErr; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve returned %v, want context.Canceled", err)
	}
	if st := ca.Stats(domains...); st.Orders != 2 {
		t.Errorf("%d orders, want 2", st.Orders)
	}
}

// runCounter is a renew.Observer counting the runs a Renewer finished
// (each after its locks were released), so that a test that found that
// Renewer holding a lock can wait for the run holding it to end.
type runCounter struct {
	mu      sync.Mutex
	n       int
	changed chan struct{} // closed and replaced on every run finished
}

func (c *runCounter) Finished(renew.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

func (c *runCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitPast waits until more than n runs have finished; it fails the test
// after a minute.
func (c *runCounter) waitPast(t *testing.T, n int) {
	t.Helper()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		if c.n > n {
			c.mu.Unlock()
			return
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("no run finished within a minute (%d so far)", n)
		}
	}
}

// localFailIssuer fails every Issue locally, before any order reaches the
// CA (DNS credentials refused, say), counting the calls.
type localFailIssuer struct{ issues atomic.Int32 }

func (l *localFailIssuer) Issue(ctx context.Context, req renew.IssueRequest, journal func(ctx context.Context, rec renew.InFlight) error) (*renew.Issued, error) {
	l.issues.Add(1)
	return nil, &renew.LocalError{What: "DNS provider credentials", Err: errors.New("refused")}
}

func (l *localFailIssuer) Resume(ctx context.Context, rec renew.InFlight) (*renew.Issued, error) {
	return nil, renew.ErrOrderGone
}

// A due lineage failing here under the fleet lock, in Serve: the run
// takes and releases the fleet lock, and that release, this node's own,
// does not come back on the watch to run the lineage again at once (it
// did, in a loop: hundreds of runs a second). Serve waits for NextCheck.
func TestServeLocalFailureDoesNotLoop(t *testing.T) {
	a, _ := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	iss := &localFailIssuer{}
	r := &renew.Renewer{Root: t.TempDir(), Issuer: iss, Fleet: a}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := r.Serve(ctx, renew.Certificate{Name: "www", Domains: []string{"www.example.com"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve: %v", err)
	}
	if n := iss.issues.Load(); n != 1 {
		t.Errorf("%d runs in a second, want 1 (the next is due in minutes)", n)
	}
}

// A certificate's names are changed on the real adapter: the fleet's
// generation for the old names is neither a bad record nor installed; the
// first node with the new names orders and publishes over it, a node still
// with the old names keeps its own and publishes nothing, and once
// reconfigured it installs the new one.
func TestRenewersNamesChanged(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	caPEM, err := os.ReadFile(ca.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	var renewers []*renew.Renewer
	for i, f := range []*Client{a, b} {
		dir := filepath.Join(base, string(rune('a'+i)))
		iss, err := acmeissuer.New(t.Context(), acmeissuer.Config{DirectoryURL: ca.DirectoryURL(), AgreeTOS: true, AccountDir: filepath.Join(dir, "account"), CARootsPEM: caPEM, HTTP01: &acmeissuer.HTTP01{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { iss.Close() })
		renewers = append(renewers, &renew.Renewer{Root: filepath.Join(dir, "certs"), Issuer: iss, Roots: ca.RootPool(), Fleet: f})
	}
	ra, rb := renewers[0], renewers[1]
	c := renew.Certificate{Name: "site", Domains: []string{"site.example.test"}, Profile: "default"}
	grown := c
	grown.Domains = []string{"site.example.test", "www.site.example.test"}
	run := func(r *renew.Renewer, c renew.Certificate, want renew.Outcome, gen uint64) {
		t.Helper()
		if res := r.Run(t.Context(), c)[0]; res.Outcome != want || res.FleetGeneration != gen {
			t.Fatalf("%s with %v: %v (fleet generation %d), want %s at %d", r.Root, c.Domains, res, res.FleetGeneration, want, gen)
		}
	}
	run(ra, c, renew.Renewed, 1)
	run(rb, c, renew.Recovered, 1)
	run(ra, grown, renew.Renewed, 2)
	run(rb, c, renew.NotDue, 1) // not yet reconfigured: its own, nothing published
	if r := view(t, a, grown); r.Err != nil || r.Current.Number != 2 || len(r.Current.Domains) != 2 {
		t.Fatalf("fleet record: %+v", r)
	}
	run(rb, grown, renew.Recovered, 2)
	if st := ca.Stats(grown.Domains...); st.Issued != 1 {
		t.Fatalf("%d issued for the new names, want 1", st.Issued)
	}
}

// Regression test for issue 22 item 7 ("-force on every node orders once per
// node"): a forced run that finds a fleet generation it has not installed
// installs it as its renewal instead of ordering again, so forcing the fleet
// is one order whichever nodes run it, one after the other or at once.
func TestRenewersForceOrdersOnce(t *testing.T) {
	cl := startCluster(t, 1)
	ca := acmetest.New(t, acmetest.Options{AlwaysValid: true})
	ctx := t.Context()
	domains := []string{"force.test", "www.force.test"}
	nodes := startNodes(t, 4, cl.config(t, ""), ca)
	run := func(n *fleetNode, force bool) renew.Result {
		c := n.cert(domains)
		c.Force = force
		return n.r.Run(ctx, c)[0]
	}
	orders := func(want int) {
		t.Helper()
		if st := ca.Stats(domains...); st.Orders != want || st.Issued != want {
			t.Fatalf("%d orders, %d issued; want %d", st.Orders, st.Issued, want)
		}
	}
	// The fleet forms: node 0 orders, the others install its certificate.
	for i, n := range nodes {
		want := renew.Recovered
		if i == 0 {
			want = renew.Renewed
		}
		if res := run(n, false); res.Outcome != want || res.FleetGeneration != 1 {
			t.Fatalf("%s: %v (fleet generation %d), want %s", n.name, res, res.FleetGeneration, want)
		}
	}
	orders(1)

	// -force on n1, then on n2: one order.
	if res := run(nodes[1], true); res.Outcome != renew.Renewed || res.FleetGeneration != 2 {
		t.Fatalf("forced on %s: %v (fleet generation %d), want renewed as generation 2", nodes[1].name, res, res.FleetGeneration)
	}
	if res := run(nodes[2], true); res.Outcome != renew.Recovered || res.FleetGeneration != 2 {
		t.Fatalf("forced on %s after %s: %v (fleet generation %d), want the fleet's generation 2 installed, no order", nodes[2].name, nodes[1].name, res, res.FleetGeneration)
	}
	orders(2)

	// Forced on every node at once: one order. A node that found the lock
	// held (Locked) installs the generation with its next run.
	results := make([]renew.Result, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { results[i] = run(n, true) })
	}
	wg.Wait()
	renewed := 0
	for i, res := range results {
		switch res.Outcome {
		case renew.Renewed:
			renewed++
		case renew.Recovered, renew.Locked:
		default:
			t.Errorf("forced at once, %s: %v", nodes[i].name, res)
		}
	}
	if renewed != 1 {
		t.Errorf("forced at once: %d nodes renewed, want 1", renewed)
	}
	orders(3)
	var serial string
	for _, n := range nodes {
		res := run(n, false)
		if !res.Outcome.OK() || res.FleetGeneration != 3 || (serial != "" && res.Serial != serial) {
			t.Fatalf("after: %s: %v (fleet generation %d, serial %s), want every node on generation 3", n.name, res, res.FleetGeneration, res.Serial)
		}
		serial = res.Serial
	}
	orders(3)
}
