package crashtest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/internal/etcdtest"
)

// TestFleetPublishToInstall measures how long a published generation takes
// to reach every node of a fleet of five nodes running -serve (driven by
// the watch), on a 3-member cluster: a sixth node forces a renewal again
// and again, and for each, every serving node's "installed" log record of
// the new serial is awaited; the latency is from the publish time in the
// fleet's meta record to that record's time (one clock: one machine).
// Asserted: every node installs every generation, runs its hook for it,
// never serves anything but one whole generation (readers of combined.pem
// on every serving node throughout),
// logs no error and stops cleanly on SIGTERM, and the CA got exactly one
// order per renewal. Renewals: 5, 100 with RENEWKIT_FLEET_FULL=1.
func TestFleetPublishToInstall(t *testing.T) {
	t.Parallel()
	renewals := fleetCount(5, 100)
	cl := etcdtest.Start(t, 3)
	e := newFleet(t, cl, fleetOptions{nodes: 6, lockTTL: 10 * time.Second})
	driver, servers := e.nodes[0], e.nodes[1:]
	first, nodes := e.serveFirst(driver, servers)
	var wg sync.WaitGroup

	stopReaders := e.watchServed("www", servers)
	serials := []string{first}
	var all, slowest []time.Duration // per node and install; per renewal, the last node
	for i := range renewals {
		e.forceRenew(driver, fmt.Sprintf("renewal %d", i))
		st := e.state("www")
		if st.Meta == nil {
			t.Fatalf("renewal %d: no generation in the fleet", i)
		}
		serial, published := st.Meta.Serial, st.Meta.Published
		serials = append(serials, serial)
		lat := make([]time.Duration, len(nodes))
		for j, s := range nodes {
			wg.Go(func() {
				if at, ok := s.waitInstalled(t, serial); ok {
					lat[j] = at.Sub(published)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		worst := time.Duration(0)
		for _, d := range lat {
			all = append(all, d)
			worst = max(worst, d)
		}
		slowest = append(slowest, worst)
	}
	reads := stopReaders()
	for _, s := range nodes {
		s.stop(t)
	}
	e.hooksRan(serials)
	st := e.ca.Stats(e.domains()...)
	if st.Orders != len(serials) || st.Issued != len(serials) {
		t.Errorf("the CA got %d orders and issued %d certificates for %d generations, want one each", st.Orders, st.Issued, len(serials))
	}
	r := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	fleetFigure(t, "publish to every node installed (5 -serve nodes, 3 etcd members, %d renewals): p50 %s, p99 %s, max %s; per node install (%d): p50 %s, p99 %s; orders per renewal %s",
		renewals, r(quantile(slowest, 0.5)), r(quantile(slowest, 0.99)), r(quantile(slowest, 1)),
		len(all), r(quantile(all, 0.5)), r(quantile(all, 0.99)), fmt.Sprintf("%.2f", float64(st.Orders)/float64(len(serials))))
	t.Logf("%d reads of combined.pem on the serving nodes meanwhile, none inconsistent", reads)
}

// TestFleetServeOutage runs three -serve nodes through an etcd outage: two
// of three members stop (no quorum), so each node's watch of the fleet
// ends (logged); the nodes keep serving their files unchanged; the members
// come back and a fourth node publishes a new generation at once. Every
// serving node must install it without waiting for its renewal timer
// (hours away): a node whose watch ended reads the fleet again when it
// watches again, so a generation published meanwhile is not missed.
func TestFleetServeOutage(t *testing.T) {
	t.Parallel()
	cl := etcdtest.Start(t, 3)
	e := newFleet(t, cl, fleetOptions{nodes: 4, lockTTL: 5 * time.Second})
	driver, servers := e.nodes[0], e.nodes[1:]
	_, nodes := e.serveFirst(driver, servers)
	var wg sync.WaitGroup
	before := map[string]map[string][]byte{}
	for _, n := range servers {
		before[n.name] = snapshotFiles(n.lineage("www"))
	}

	// No quorum: every node's watch ends.
	follower := cl.Follower()
	cl.Stop(follower)
	leader := cl.WaitLeader()
	cl.Stop(leader)
	for _, s := range nodes {
		wg.Go(func() {
			s.waitRecord(t, "the end of its fleet watch", 60*time.Second, func(r logRecord) bool {
				return strings.Contains(r.Msg, "fleet watch ended")
			})
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, n := range servers {
		if got := snapshotFiles(n.lineage("www")); !sameFiles(got, before[n.name]) {
			t.Errorf("node %s changed its served files during the outage", n.name)
		}
	}

	// The quorum is back; a generation is published at once.
	cl.Restart(follower, leader)
	cl.WaitLeader()
	e.forceRenew(driver, "renewal once the quorum is back")
	next, _ := e.fleetSerial("www")
	start := time.Now()
	var mu sync.Mutex
	var missed []string
	for _, s := range nodes {
		wg.Go(func() {
			// The watch is started again serveRewatchWait (10 s) after it
			// ended, which was before the quorum came back.
			rec, err := s.next(t, "install of serial "+next+" published after its watch ended", 20*time.Second, func(r logRecord) bool {
				return r.Msg == "installed" && r.str("serial") == next
			})
			if err != nil {
				mu.Lock()
				missed = append(missed, s.node.name)
				mu.Unlock()
				return
			}
			t.Logf("node %s installed the generation published after the outage %v after the publish", s.node.name, rec.Time.Sub(start).Round(time.Millisecond))
		})
	}
	wg.Wait()
	for _, s := range nodes {
		s.stop(t)
	}
	if len(missed) > 0 {
		knownIssue(t, "fleet-rewatch-missed", "-serve nodes %v did not install the generation published while their fleet watch was down within 20 s: a restarted watch does not read the fleet first, so the publish is missed until the renewal timer (hours)", missed)
		return
	}
	e.mustServe("www", next, servers...)
}

// TestFleetServeTakeover kills a -serve node (SIGKILL, at crash point
// renew.run:8) while it holds the fleet lock of a forced renewal whose
// certificate the CA has issued. The two other -serve nodes are told by
// their watch of the journaled order, then of the dead holder's lock
// expiring: without anything else happening, one of them finishes the
// journaled order (no second issuance) and both install it.
func TestFleetServeTakeover(t *testing.T) {
	t.Parallel()
	cl := etcdtest.Start(t, 3)
	e := newFleet(t, cl, fleetOptions{nodes: 3, lockTTL: 2 * time.Second})
	first, _ := e.form()
	issued0 := e.issued()
	nodes := []*serveNode{e.startServe(e.nodes[1]), e.startServe(e.nodes[2])}
	// The serving nodes run once at their start, finding nothing to do.
	var wg sync.WaitGroup
	for _, s := range nodes {
		wg.Go(func() {
			s.waitRecord(t, "its first run", 60*time.Second, func(r logRecord) bool {
				return r.Msg == "certificate" && r.str("outcome") == "not_due"
			})
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if r := e.nodes[0].run([]string{"RENEWKIT_CRASH_AT=renew.run:8"}, "-serve", "-force", "all"); !r.killed {
		t.Fatalf("the holder was not killed at renew.run:8: %v", r)
	}
	start := time.Now()
	st := e.waitState("www", "the journaled order published", 60*time.Second, func(st *fleet.State) bool {
		return st.Meta != nil && st.Meta.Serial != first
	})
	serial := st.Meta.Serial
	for _, s := range nodes {
		wg.Go(func() { s.waitInstalled(t, serial) })
	}
	wg.Wait()
	t.Logf("both serving nodes installed the dead holder's certificate %v after the kill (lock_ttl 2s); published by %s", time.Since(start).Round(time.Millisecond), st.Meta.IssuedBy)
	for _, s := range nodes {
		s.stop(t)
	}
	if n := e.issued() - issued0; n != 1 {
		t.Errorf("the CA issued %d certificates for the renewal, want 1", n)
	}
	e.mustServe("www", serial, e.nodes[1:]...)
	e.hooksRan([]string{first, serial}, e.nodes[1:]...)
	if st := e.state("www"); st.Journal != nil {
		t.Errorf("the journal is still in etcd: %+v", st.Journal)
	}
}

// forceRenew has driver force a renewal of "www" until it renews. A
// serving node runs whenever its watch sees the fleet's records change (the
// last publish, its own install) and holds the fleet lock meanwhile, so the
// driver's run may find the lock held: "locked" is the correct outcome
// then, not a failure. The driver waits on etcd's watch for the lock's
// release and runs again; any other outcome than "renewed" fails the test.
func (e *fleetEnv) forceRenew(driver *fleetNode, what string) run {
	e.t.Helper()
	const attempts = 20 // each "locked" is a serving node's run: they end
	for i := 1; ; i++ {
		r := driver.run(nil, "-force", "all")
		if r.outcome("www") == "locked" && i < attempts {
			e.t.Logf("%s: attempt %d found the fleet lock held (%v); waiting for its release", what, i, r.summaries()["www"]["reason"])
			last := ""
			e.waitState("www", "the fleet lock of www released", 60*time.Second, func(st *fleet.State) bool {
				if st.Holder != last && st.Holder != "" {
					e.t.Logf("%s: the fleet lock of www is held by node %q since %v", what, st.Holder, st.HolderSince)
				}
				last = st.Holder
				return st.Holder == ""
			})
			continue
		}
		if r.code != 0 || r.outcome("www") != "renewed" {
			e.t.Fatalf("%s (attempt %d): %v", what, i, r)
		}
		return r
	}
}

// serveFirst has driver issue the fleet's first generation of "www", starts
// servers with -serve and waits until each installed it. It returns the
// generation's serial and the serving nodes.
func (e *fleetEnv) serveFirst(driver *fleetNode, servers []*fleetNode) (string, []*serveNode) {
	e.t.Helper()
	if r := driver.mustRun(0); r.outcome("www") != "renewed" {
		e.t.Fatalf("first issuance: %v", r)
	}
	first, _ := e.fleetSerial("www")
	nodes := make([]*serveNode, len(servers))
	for i, n := range servers {
		nodes[i] = e.startServe(n)
	}
	var wg sync.WaitGroup
	for _, s := range nodes {
		wg.Go(func() { s.waitInstalled(e.t, first) }) // errors reported there
	}
	wg.Wait()
	if e.t.Failed() {
		e.t.FailNow()
	}
	return first, nodes
}
