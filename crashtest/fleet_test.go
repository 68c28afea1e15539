package crashtest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/renewkit/renewkit/internal/etcdtest"
	"github.com/renewkit/renewkit/internal/testacme"
)

// TestFleetRenewals runs five nodes as separate processes through many
// renewals on a 3-member etcd cluster. Round 0 is the first issuance, all
// five racing for it; in each later round one node (in turn) forces a
// renewal while the other four run: at the same moment (even rounds), or
// while the forced node holds the lock with its order journaled, the CA
// holding its finalize (odd rounds: each of the four must report the lock
// held and order nothing). After each round the nodes that did not install
// the fleet's new generation yet run once more. Asserted: every run exits
// 0; the CA got exactly one order and issued one certificate per round
// (orders per renewal: 1.00); the fleet's generation number went up by
// one; every node serves the fleet's serial as one whole generation, and
// readers of combined.pem on every node (from round 1 on) never found
// anything else; each node's deploy hook ran for every generation.
func TestFleetRenewals(t *testing.T) {
	t.Parallel()
	rounds := fleetCount(4, 30)
	cl := etcdtest.Start(t, 3)
	e := newFleet(t, cl, fleetOptions{nodes: 5, lockTTL: 10 * time.Second})
	var serials []string
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ROUND\tFORCED\tOUTCOMES\tSETTLE\tORDERS\tGENERATION\n")
	stopReaders := func() int { return 0 }
	for r := 0; r <= rounds; r++ {
		if r == 1 { // every node serves the first generation
			stopReaders = e.watchServed("www", e.nodes)
		}
		forced := -1
		if r > 0 {
			forced = r % len(e.nodes)
		}
		orders0, issued0 := e.orders(), e.issued()
		var runs []run
		if r%2 == 0 {
			// All at once.
			runs = runNodes(e.nodes, func(i int) []string {
				if i == forced {
					return []string{"-force", "all"}
				}
				return nil
			}, nil)
		} else {
			// The others while the forced node holds the lock with its
			// order journaled (the CA holds its finalize): each finds
			// the order in progress, the lock held, and orders nothing.
			arrived, release := holdRequest(t, e.ca, testacme.EndpointFinalize)
			_, ch := startRun(t, e.nodes[forced], nil, "-force", "all")
			done, result := doneOf(ch)
			arrived(done, result)
			others := slices.Delete(slices.Clone(e.nodes), forced, forced+1)
			for i, run := range runNodes(others, nil, nil) {
				holder, _ := run.summaries()["www"]["lock_node"].(string)
				if o := run.outcome("www"); o != "locked" || holder != e.nodes[forced].name {
					t.Errorf("round %d: node %s ran while node %s held the lock in finalize: outcome %q naming holder %q, want locked naming %s", r, others[i].name, e.nodes[forced].name, o, holder, e.nodes[forced].name)
				}
				runs = append(runs, run)
			}
			release()
			runs = append(runs, result())
		}
		outcomes := map[string]int{}
		for _, run := range runs {
			o := run.outcome("www")
			outcomes[o]++
			if run.code != 0 {
				t.Errorf("round %d: %v", r, run)
			}
		}
		if outcomes["renewed"] != 1 {
			t.Errorf("round %d: outcomes %v, want exactly one renewed", r, outcomes)
		}
		serial, gen := e.fleetSerial("www")
		if gen != int64(r+1) || serial == "" {
			t.Fatalf("round %d: the fleet's generation is %d (serial %q), want %d", r, gen, serial, r+1)
		}
		// The nodes that ran before the publish install it now.
		var behind []*fleetNode
		for _, n := range e.nodes {
			if got, err := n.servedSerial("www"); err != nil || got != serial {
				behind = append(behind, n)
			}
		}
		settle := runNodes(behind, nil, nil)
		for i, run := range settle {
			if run.code != 0 || run.outcome("www") != "recovered" {
				t.Errorf("round %d: node %s installing the fleet's generation: want exit 0 and recovered, got %v", r, behind[i].name, run)
			}
		}
		orders, issued := e.orders()-orders0, e.issued()-issued0
		if orders != 1 || issued != 1 {
			t.Errorf("round %d: the CA got %d orders and issued %d certificates, want 1 and 1", r, orders, issued)
		}
		e.mustServe("www", serial)
		serials = append(serials, serial)
		fmt.Fprintf(tw, "%d\t%d\t%v\t%d\t%d\t%d\n", r, forced, outcomes, len(behind), orders, gen)
		if t.Failed() {
			break
		}
	}
	tw.Flush()
	reads := stopReaders()
	e.hooksRan(serials)
	st := e.ca.Stats(e.domains()...)
	t.Logf("5 nodes, %d renewals (%d reads of combined.pem on the nodes meanwhile, none inconsistent):\n%s", len(serials), reads, b.String())
	fleetFigure(t, "5 one-shot nodes, %d renewals (first issuance + %d forced, the other four running at the same moment or while the forced node held the lock): %d orders, %d issued: %.2f orders per renewal",
		len(serials), len(serials)-1, st.Orders, st.Issued, float64(st.Orders)/float64(len(serials)))
}

// fleetCrashPoints are the fleet path's kill points (renew's crash points
// "renew.run:8:journaled", "renew.run:8", "renew.run:10") and the local
// install's after the publish.
var fleetCrashPoints = []string{"renew.run:8:journaled", "renew.run:8", "renew.run:10", "renew.run:11", "renew.run:14"}

// TestFleetCrashPoints SIGKILLs the lock holder of a forced renewal at each
// crash point of the fleet path. After the kill every node serves one whole
// generation (the old one, or the new one on the killed node); another node
// that runs at once does not order (the dead holder's lock stands until its
// lease expires); once the lease has expired (watched in etcd) that node
// completes the renewal, the killed node's rerun and a third node install
// the fleet's generation, all three serve the same serial (and readers of
// combined.pem on the two other nodes never found anything else), the CA
// issued at most one certificate for the renewal (exactly one once
// finalize may have run), nothing is left in etcd (no journal, no holder)
// and every generation served had its deploy hook run on each node.
func TestFleetCrashPoints(t *testing.T) {
	t.Parallel()
	cl := etcdtest.Start(t, 3)
	type row struct {
		point, afterKill, other, rerun string
		issued, orders                 int
		problems                       int
	}
	points, finalized := fleetCrashPoints, 1 // fleetCrashPoints[1:] come after finalize
	if fleetFull() {
		points, finalized = traceFleetPoints(t, cl)
	}
	rows := make([]row, len(points))
	concurrently(t, workers(t), points, func(p string) string { return strings.ReplaceAll(p, "#", "_") }, func(t *testing.T, i int, point string) {
		rows[i] = row{point: point, afterKill: "?", other: "?", rerun: "?"}
		e := newFleet(t, cl, fleetOptions{nodes: 3})
		a, b, c := e.nodes[0], e.nodes[1], e.nodes[2]
		old, oldGen := e.form()
		issued0, orders0 := e.issued(), e.orders()
		// The other nodes are read as HAProxy reads them throughout.
		stopReaders := e.watchServed("www", []*fleetNode{b, c})

		// The holder dies.
		if r := a.run([]string{"RENEWKIT_CRASH_AT=" + point}, "-force", "all"); !r.killed {
			t.Fatalf("node %s was not killed at %s: %v", a.name, point, r)
		}
		killedServes, err := a.servedSerial("www")
		if err != nil {
			t.Errorf("after the kill at %s: %v", point, err)
		}
		rows[i].afterKill = "old"
		if killedServes != old {
			rows[i].afterKill = "new"
		}
		e.mustServe("www", old, b, c)

		// Another node at once: no order while the dead holder's lock stands.
		r := b.run(nil)
		rows[i].other = r.outcome("www")
		if r.code != 0 {
			t.Errorf("node %s right after the kill at %s: %v", b.name, point, r)
		}
		if n := e.orders() - orders0; n > 1 {
			t.Errorf("node %s ordered while the killed holder's lock stood: %d orders", b.name, n)
		}
		e.waitUnlocked("www")
		// Then it completes the renewal, the killed node and a third node
		// install it.
		for _, n := range []*fleetNode{b, a, c} {
			r := n.run(nil)
			if n == a {
				rows[i].rerun = r.outcome("www")
			}
			if r.code != 0 {
				t.Errorf("node %s after the kill at %s and the lease's expiry: %v", n.name, point, r)
			}
		}
		stopReaders()
		serial, gen := e.fleetSerial("www")
		e.mustServe("www", serial)
		rows[i].issued, rows[i].orders = e.issued()-issued0, e.orders()-orders0
		wantMin := 1
		if i < finalized {
			wantMin = 0 // killed before finalize: nothing was issued, the renewal may be dropped
		}
		if rows[i].issued < wantMin || rows[i].issued > 1 {
			t.Errorf("kill at %s: the CA issued %d certificates for the renewal, want %d to 1", point, rows[i].issued, wantMin)
		}
		if rows[i].issued == 1 && (serial == old || gen != oldGen+1) {
			t.Errorf("kill at %s: a certificate was issued but the fleet is at generation %d, serial %s (was %d, %s)", point, gen, serial, oldGen, old)
		}
		if rows[i].issued == 0 && serial != old {
			t.Errorf("kill at %s: nothing was issued but the fleet's serial changed from %s to %s", point, old, serial)
		}
		st := e.state("www")
		if st.Journal != nil || st.Holder != "" || st.Err != nil {
			t.Errorf("kill at %s: the fleet's records still hold journal %+v, holder %q, error %v", point, st.Journal, st.Holder, st.Err)
		}
		want := []string{old, serial}
		e.hooksRan(want[:1], b, c)
		e.hooksRan(want[1:])
		if killedServes != "" && killedServes != old {
			e.hooksRan([]string{killedServes}, a)
		}
		// Idempotent: a run on each node changes nothing.
		for _, n := range e.nodes {
			if r := n.run(nil); r.code != 0 || r.outcome("www") != "not_due" {
				t.Errorf("node %s, a run after everything settled: %v", n.name, r)
			}
		}
		if n := e.issued() - issued0; n != rows[i].issued {
			t.Errorf("kill at %s: the settled runs issued again", point)
		}
		if t.Failed() {
			rows[i].problems = 1
		}
	})
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "KILLED AT\tKILLED NODE SERVES\tOTHER NODE AT ONCE\tKILLED NODE'S RERUN\tORDERS\tISSUED\tPROBLEMS\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", r.point, r.afterKill, r.other, r.rerun, r.orders, r.issued, r.problems)
	}
	tw.Flush()
	t.Logf("lock holder SIGKILLed at each fleet crash point:\n%s", b.String())
}

// traceFleetPoints returns every crash point a forced renewal by a fleet
// node passes (each occurrence numbered, "name#2"), from a run with
// RENEWKIT_CRASH_TRACE, and the index of the first one after the order
// was finalized.
func traceFleetPoints(t *testing.T, cl *etcdtest.Cluster) ([]string, int) {
	t.Helper()
	e := newFleet(t, cl, fleetOptions{nodes: 1})
	n := e.nodes[0]
	n.mustRun(0)
	trace := filepath.Join(n.dir, "trace")
	if r := n.run([]string{"RENEWKIT_CRASH_TRACE=" + trace}, "-force", "all"); r.code != 0 {
		t.Fatalf("traced run: %v", r)
	}
	points := readTrace(t, trace)
	finalized := slices.Index(points, "acmeissuer.after-finalize#1")
	if finalized < 0 || !slices.Contains(points, "renew.run:8:journaled#1") || !slices.Contains(points, "renew.run:10#1") {
		t.Fatalf("the trace lacks acmeissuer.after-finalize, renew.run:8:journaled or renew.run:10: %v", points)
	}
	return points, finalized
}

// holdRequest makes the CA hold the next request to ep until release is
// called, and returns a func that waits until that request arrived (or
// fails the test when done closes first: the client ended).
func holdRequest(t *testing.T, ca *testacme.Server, ep testacme.Endpoint) (arrived func(done <-chan struct{}, result func() run), release func()) {
	t.Helper()
	ch := make(chan struct{})
	label := "hold-" + string(ep)
	fired0 := ca.FaultStats().ByName[label]
	remove := ca.Inject(testacme.Fault{Name: label, Endpoint: ep, Kind: testacme.FaultDelay, Release: ch, Count: 1})
	var once bool
	release = func() {
		if !once {
			once = true
			close(ch)
			remove()
		}
	}
	t.Cleanup(release)
	arrived = func(done <-chan struct{}, result func() run) {
		t.Helper()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		deadline := time.NewTimer(60 * time.Second)
		defer deadline.Stop()
		for ca.FaultStats().ByName[label] == fired0 {
			select {
			case <-done:
				t.Fatalf("the renewal ended before its %s request reached the CA: %v", ep, result())
			case <-deadline.C:
				t.Fatalf("no %s request within 60s", ep)
			case <-tick.C:
			}
		}
	}
	return arrived, release
}

// startRun starts the CLI on node n and returns a channel that delivers its
// run when it ends.
func startRun(t *testing.T, n *fleetNode, env []string, args ...string) (*startedCmd, <-chan run) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd, t0 := n.start(ctx, env, args...)
	done := make(chan run, 1)
	go func() {
		defer cancel()
		done <- wait(cmd, t0)
	}()
	return &startedCmd{cmd: cmd, t0: t0}, done
}

// doneOf turns a run channel into a "has ended" signal without consuming
// the run.
func doneOf(ch <-chan run) (<-chan struct{}, func() run) {
	done := make(chan struct{})
	var r run
	go func() {
		r = <-ch
		close(done)
	}()
	return done, func() run { <-done; return r }
}

// TestFleetPausedHolder stops (SIGSTOP) the lock holder of a forced renewal
// inside its finalize request, after it journaled the order, and keeps it
// stopped past its lease (lock_ttl 2 s; the expiry is watched in etcd),
// while the CA finishes the finalize. Another node then takes the lock and
// finishes the journaled order: the certificate issued for the stopped
// node's order is published by the other node, not ordered again. The
// stopped node continues (SIGCONT) either after the other node published
// (its publish is refused: not newer than the fleet's) or while the other
// node holds the lock and is still fetching the certificate (the CA holds
// that request): then the fleet's generation is still the old one and only
// fencing refuses the write. Either way the stale holder exits with a
// failure naming the refusal and installs nothing, no etcd key changes
// while it runs, the fleet's generation never goes back, one certificate
// was issued in all, and every node ends serving the other node's
// publication.
func TestFleetPausedHolder(t *testing.T) {
	t.Parallel()
	cl := etcdtest.Start(t, 3)
	for _, takeoverInProgress := range []bool{false, true} {
		name := "after-the-takeover"
		if takeoverInProgress {
			name = "during-the-takeover"
		}
		t.Run(name, func(t *testing.T) { pausedHolder(t, cl, takeoverInProgress) })
	}
}

func pausedHolder(t *testing.T, cl *etcdtest.Cluster, takeoverInProgress bool) {
	e := newFleet(t, cl, fleetOptions{nodes: 3, lockTTL: 2 * time.Second})
	a, b, c := e.nodes[0], e.nodes[1], e.nodes[2]
	old, oldGen := e.form()
	issued0 := e.issued()
	beforeA := snapshotFiles(a.lineage("www"))

	arrived, release := holdRequest(t, e.ca, testacme.EndpointFinalize)
	cmd, ch := startRun(t, a, nil, "-force", "all")
	done, result := doneOf(ch)
	arrived(done, result)
	st := e.state("www")
	if st.Holder != a.name || st.Journal == nil {
		t.Fatalf("node %s is in finalize but the fleet says holder %q, journal %+v", a.name, st.Holder, st.Journal)
	}
	pid := cmd.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	// The held finalize goes on at the CA while its client is stopped.
	release()
	waitIssued(t, e, issued0+1)
	e.waitUnlocked("www")

	// Another node takes over: it finishes the journaled order. During
	// the takeover, the CA holds its certificate download (it holds the
	// lock, has published nothing yet) while the stale holder wakes.
	var takeover <-chan run
	releaseB := func() {}
	if takeoverInProgress {
		var arrivedB func(<-chan struct{}, func() run)
		arrivedB, releaseB = holdRequest(t, e.ca, testacme.EndpointCertificate)
		var chB <-chan run
		_, chB = startRun(t, b, nil, "-force", "all")
		var doneB <-chan struct{}
		var resultB func() run
		doneB, resultB = doneOf(chB)
		arrivedB(doneB, resultB)
		full := make(chan run, 1)
		go func() { full <- resultB() }()
		takeover = full
	} else {
		full := make(chan run, 1)
		full <- b.run(nil, "-force", "all")
		takeover = full
		if s, g := e.fleetSerial("www"); g != oldGen+1 || s == old {
			t.Fatalf("after the takeover the fleet is at generation %d, serial %s; want %d and a new serial", g, s, oldGen+1)
		}
	}
	head, err := e.raw.Get(context.Background(), e.prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	revBefore := head.Header.Revision

	// The stale holder wakes.
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	ra := result()
	t.Logf("the stale holder after SIGCONT: exit %d, outcome %s: %s", ra.code, ra.outcome("www"), summaryError(ra))
	if ra.code == 0 || ra.outcome("www") == "renewed" {
		t.Errorf("the stale holder, woken after its lease expired: want a failure, got %v", ra)
	}
	if takeoverInProgress && !strings.Contains(ra.stderr, "fenced") {
		t.Errorf("the stale holder's log does not say its write was fenced:\n%s", ra.stderr)
	} else if !fenceOrRefusal(ra.stderr) {
		t.Errorf("the stale holder's log does not say its write was refused:\n%s", ra.stderr)
	}
	// Nothing changed in etcd while it ran.
	resp, err := e.raw.Get(context.Background(), e.prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if kv.ModRevision > revBefore {
			t.Errorf("the stale holder wrote %s (revision %d > %d)", kv.Key, kv.ModRevision, revBefore)
		}
	}
	if resp.Header.Revision != revBefore {
		t.Errorf("etcd's revision went from %d to %d while the stale holder ran", revBefore, resp.Header.Revision)
	}
	if got := snapshotFiles(a.lineage("www")); !sameFiles(got, beforeA) {
		t.Errorf("the stale holder changed its served files")
	}

	releaseB()
	if r := <-takeover; r.code != 0 || r.outcome("www") != "renewed" && r.outcome("www") != "recovered" {
		t.Errorf("node %s taking over from the stopped holder: %v", b.name, r)
	}
	serial, gen := e.fleetSerial("www")
	if gen != oldGen+1 || serial == old {
		t.Fatalf("after the takeover the fleet is at generation %d, serial %s; want %d and a new serial", gen, serial, oldGen+1)
	}
	e.mustInstall("installing the fleet's generation", a, c)
	if s2, g2 := e.fleetSerial("www"); s2 != serial || g2 != gen {
		t.Errorf("the fleet went from generation %d (%s) to %d (%s)", gen, serial, g2, s2)
	}
	e.mustServe("www", serial)
	e.hooksRan([]string{old, serial})
	if n := e.issued() - issued0; n != 1 {
		t.Errorf("the CA issued %d certificates in all, want 1: the stopped holder's order, finished by the other node", n)
	}
}

// waitIssued waits until the CA issued n certificates for the fleet's names.
func waitIssued(t *testing.T, e *fleetEnv, n int) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for e.issued() < n {
		select {
		case <-deadline.C:
			t.Fatalf("the CA issued %d certificates after 60s, want %d", e.issued(), n)
		case <-tick.C:
		}
	}
}

// TestFleetQuorumLoss stops etcd members in the middle of renewals. With one
// member down (a quorum left) a renewal whose finalize is in flight
// completes. With the leader stopped too (no quorum) during the next
// renewal's finalize, the holder cannot publish and fails, every node keeps
// serving its files byte for byte and its run ends deferred with a non-zero
// exit, and no node orders on its own. Once the members are back and the
// holder's lease has expired, another node finishes the order the CA issued
// (no second issuance) and every node installs it.
func TestFleetQuorumLoss(t *testing.T) {
	t.Parallel()
	cl := etcdtest.Start(t, 3)
	// A lease long enough to outlive the client's failover from a stopped member
	// under load (phase 1 must keep its lock), short enough to wait out.
	e := newFleet(t, cl, fleetOptions{nodes: 3, lockTTL: 5 * time.Second, requestTimeout: time.Second})
	a, b, c := e.nodes[0], e.nodes[1], e.nodes[2]
	first, _ := e.form()

	// One member stops while node a is in finalize: the renewal completes.
	issued0 := e.issued()
	arrived, release := holdRequest(t, e.ca, testacme.EndpointFinalize)
	_, ch := startRun(t, a, nil, "-force", "all")
	done, result := doneOf(ch)
	arrived(done, result)
	follower := cl.Follower()
	cl.Stop(follower)
	release()
	if r := result(); r.code != 0 || r.outcome("www") != "renewed" {
		t.Fatalf("renewal with one of three members down: %v", r)
	}
	second, gen2 := e.fleetSerial("www")
	e.mustInstall("with one member down", b, c)
	e.mustServe("www", second)
	if n := e.issued() - issued0; n != 1 {
		t.Errorf("issued %d with one member down, want 1", n)
	}

	// The leader stops while node a is in finalize: no quorum.
	issued1, orders1 := e.issued(), e.orders()
	before := map[string]map[string][]byte{}
	for _, n := range e.nodes {
		before[n.name] = snapshotFiles(n.lineage("www"))
	}
	arrived, release = holdRequest(t, e.ca, testacme.EndpointFinalize)
	_, ch = startRun(t, a, nil, "-force", "all")
	done, result = doneOf(ch)
	arrived(done, result)
	leader := cl.WaitLeader()
	cl.Stop(leader)
	release()
	ra := result()
	if ra.code == 0 {
		t.Errorf("node %s could not publish without a quorum but exited 0: %v", a.name, ra)
	}
	t.Logf("the holder without a quorum: exit %d, outcome %s: %s", ra.code, ra.outcome("www"), summaryError(ra))
	for _, n := range e.nodes {
		r := n.run(nil)
		if r.code == 0 || r.outcome("www") != "deferred" {
			t.Errorf("node %s without a quorum: want deferred and a non-zero exit, got %v", n.name, r)
		}
		if n == b {
			t.Logf("node %s without a quorum: exit %d, outcome %s: %s", n.name, r.code, r.outcome("www"), summaryError(r))
		}
		if !strings.Contains(r.stderr, "unavailable") {
			t.Errorf("node %s without a quorum: its log does not say the fleet is unavailable:\n%s", n.name, r.stderr)
		}
		if got := snapshotFiles(n.lineage("www")); !sameFiles(got, before[n.name]) {
			t.Errorf("node %s changed its served files without a quorum", n.name)
		}
		if _, err := n.servedSerial("www"); err != nil {
			t.Errorf("without a quorum: %v", err)
		}
	}
	if n := e.orders() - orders1; n != 1 {
		t.Errorf("the CA got %d orders during the outage, want only the holder's 1", n)
	}

	// The members come back; once the holder's lease has expired another
	// node finishes the issued order.
	cl.Restart(follower, leader)
	cl.WaitLeader()
	e.waitUnlocked("www")
	if r := b.run(nil); r.code != 0 {
		t.Errorf("node %s once a quorum is back: %v", b.name, r)
	}
	third, gen3 := e.fleetSerial("www")
	if gen3 != gen2+1 || third == second {
		t.Errorf("after the outage the fleet is at generation %d (%s), want %d and a new serial", gen3, third, gen2+1)
	}
	e.mustInstall("once a quorum is back", a, c)
	e.mustServe("www", third)
	if n := e.issued() - issued1; n != 1 {
		t.Errorf("the CA issued %d certificates for the renewal cut by the outage, want 1 (the journaled order finished, not ordered again)", n)
	}
	if n := e.orders() - orders1; n != 1 {
		t.Errorf("the CA got %d orders for the renewal cut by the outage, want 1", n)
	}
	e.hooksRan([]string{first, second, third})
}

// TestFleetOwnAccounts is TestFleetCrashPoints' kill at renew.run:8 on
// nodes that each have an ACME account of their own (the CLI's default
// account_dir is under each node's root): the CA finalized the killed
// holder's order, and the node that takes over must install that
// certificate rather than waste it. An order belongs to the account that
// placed it, so another account's node could not fetch it: the CLI shares
// one account key per CA through the fleet (fleet.Client.ShareAccountKey),
// and the nodes' own account directories end up holding that key.
func TestFleetOwnAccounts(t *testing.T) {
	t.Parallel()
	cl := etcdtest.Start(t, 1)
	e := newFleet(t, cl, fleetOptions{nodes: 2, ownAccounts: true})
	a, b := e.nodes[0], e.nodes[1]
	old, oldGen := e.form()
	issued0 := e.issued()
	if r := a.run([]string{"RENEWKIT_CRASH_AT=renew.run:8"}, "-force", "all"); !r.killed {
		t.Fatalf("node %s was not killed at renew.run:8: %v", a.name, r)
	}
	e.waitUnlocked("www")
	r := b.run(nil)
	if r.code != 0 {
		t.Errorf("node %s taking over: %v", b.name, r)
	}
	serial, gen := e.fleetSerial("www")
	if issued := e.issued() - issued0; issued != 1 || gen != oldGen+1 || serial == old {
		knownIssue(t, "fleet-own-accounts", "nodes with accounts of their own: the CA issued %d certificates for the killed holder's renewal and the fleet is at generation %d (was %d): the certificate of the killed holder's order was wasted (%s)",
			issued, gen, oldGen, summaryError(r)+strings.Join(errorRecords(r.stderr), " "))
	}
}
