package renew

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/hooks"
)

// fleetEnv is nodes sharing one memFleet, one fake CA and one clock; node
// "a" is the env's Renewer, other nodes have Roots of their own.
type fleetEnv struct {
	*env
	fleet *memFleet
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	e := newEnv(t)
	fe := &fleetEnv{env: e, fleet: newMemFleet(e.clk.Now)}
	e.r.Fleet = fe.fleet.node("a")
	return fe
}

// twoNodes returns node b after a and b have installed the fleet's first
// generation of c and the clock has moved to when it is due.
func (fe *fleetEnv) twoNodes(t *testing.T, c Certificate) *Renewer {
	t.Helper()
	b := fe.node("b")
	for _, r := range []*Renewer{fe.r, b} {
		if res := runOn(t, r, c); res.Outcome != Renewed && res.Outcome != Recovered {
			t.Fatalf("setting up: %+v", res)
		}
	}
	fe.clk.Add(61 * 24 * time.Hour) // less than a third left
	return b
}

// deadNodeOrder has node "dead" take the fleet lock of c, journal an order
// in the fleet and have the CA finalize it, then lose the lock (its lease
// expires): a node killed after finalize. It returns the order's key.
func (fe *fleetEnv) deadNodeOrder(t *testing.T, c Certificate) []byte {
	t.Helper()
	ctx := context.Background()
	lk, err := fe.fleet.node("dead").Lock(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	key, err := EC256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := encodeKey(key)
	req := IssueRequest{Name: c.Name, Domains: canonicalNames(c.Domains), Key: key}
	if _, err := fe.ca.Issue(ctx, req, func(ctx context.Context, rec InFlight) error {
		return lk.Journal(ctx, FleetOrder{OrderURL: rec.OrderURL, Domains: rec.Domains, Created: rec.Created, Key: keyPEM})
	}); err != nil {
		t.Fatal(err)
	}
	fe.fleet.revoke(c.Name)
	return keyPEM
}

// node returns a Renewer for another node of the fleet.
func (fe *fleetEnv) node(name string) *Renewer {
	return &Renewer{
		Root:   filepath.Join(filepath.Dir(fe.root), "root-"+name),
		Issuer: fe.ca,
		Now:    fe.clk.Now,
		Roots:  fe.ca.roots(),
		Fleet:  fe.fleet.node(name),
		Retry:  fe.r.Retry,
	}
}

func runOn(t *testing.T, r *Renewer, c Certificate) Result {
	t.Helper()
	res := r.Run(context.Background(), c)
	if len(res) != 1 {
		t.Fatalf("Run returned %d results", len(res))
	}
	return res[0]
}

// servedPair returns the serial and the private key a lineage serves.
func servedPair(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	leaf := served(t, dir)
	key, err := os.ReadFile(filepath.Join(dir, "privkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return serialHex(leaf.SerialNumber), key
}

// snapshotDir returns every entry under dir (its mode, and its content or
// link target), the lock file aside.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == ".lock" {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("%s: %d entries before, %d after", what, len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s changed", what, k)
		}
	}
}

// Two nodes renewing the same names through one fleet, concurrently, over
// several renewals: one order per renewal, both serve the same
// certificate and key, each node's hook runs once per generation, and a
// nothing-due run takes no lock.
func TestFleetOneOrderPerRenewal(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	ha, hb := &counter{name: "a"}, &counter{name: "b"}
	ca, cb := cert("site", ha), cert("site", hb)
	dirA, dirB := filepath.Join(fe.root, "site"), filepath.Join(b.Root, "site")
	for round := 1; round <= 3; round++ {
		if round > 1 {
			fe.clk.Add(61 * 24 * time.Hour) // due: less than a third left
		}
		var resA, resB Result
		var wg sync.WaitGroup
		wg.Go(func() { resA = runOn(t, fe.r, ca) })
		wg.Go(func() { resB = runOn(t, b, cb) })
		wg.Wait()
		// The node that found the fleet lock held runs again and installs
		// what the other published.
		if resA.Outcome == Locked {
			if resA.LockNode != "b" {
				t.Errorf("round %d: Locked names node %q, want b", round, resA.LockNode)
			}
			resA = runOn(t, fe.r, ca)
		}
		if resB.Outcome == Locked {
			resB = runOn(t, b, cb)
		}
		if resA.Issued+resB.Issued != 1 {
			t.Fatalf("round %d: issued %d+%d: %+v / %+v", round, resA.Issued, resB.Issued, resA, resB)
		}
		for _, res := range []Result{resA, resB} {
			if res.Outcome != Renewed && res.Outcome != Recovered {
				t.Fatalf("round %d: %+v", round, res)
			}
			if res.FleetGeneration != uint64(round) {
				t.Errorf("round %d: FleetGeneration %d", round, res.FleetGeneration)
			}
		}
		if got := fe.ca.issuedCount(); got != round {
			t.Fatalf("round %d: the CA issued %d certificates", round, got)
		}
		sa, ka := servedPair(t, dirA)
		sb, kb := servedPair(t, dirB)
		if sa != sb || !bytes.Equal(ka, kb) {
			t.Fatalf("round %d: a serves %s, b serves %s (same key: %v)", round, sa, sb, bytes.Equal(ka, kb))
		}
		if rec := fe.fleet.record("site"); rec.Serial != sa || rec.Number != uint64(round) || rec.Order != nil {
			t.Fatalf("round %d: fleet record %+v", round, rec)
		}
		if ha.n.Load() != int32(round) || hb.n.Load() != int32(round) {
			t.Fatalf("round %d: hooks ran %d and %d times", round, ha.n.Load(), hb.n.Load())
		}
	}
	// Nothing due: the fast path, no lock, no write.
	_, locks, _ := fe.fleet.counts()
	for _, n := range []struct {
		r *Renewer
		c Certificate
	}{{fe.r, ca}, {b, cb}} {
		if res := runOn(t, n.r, n.c); res.Outcome != NotDue || res.FleetGeneration != 3 {
			t.Fatalf("nothing due: %+v", res)
		}
	}
	if _, l, _ := fe.fleet.counts(); l != locks {
		t.Errorf("a nothing-due run took the fleet lock (%d → %d)", locks, l)
	}
}

// A node whose own certificate is older than the fleet's installs the
// fleet's generation (its hook runs once), orders nothing.
func TestFleetSyncsNewerGeneration(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	hb := &counter{name: "b"}
	c := cert("site", hb)
	b.Fleet = nil // b starts as a single node
	if res := runOn(t, b, c); res.Outcome != Renewed {
		t.Fatalf("b alone: %+v", res)
	}
	if res := runOn(t, fe.r, cert("site")); res.Outcome != Renewed || res.FleetGeneration != 1 {
		t.Fatalf("a: %+v", res)
	}
	b.Fleet = fe.fleet.node("b")
	res := runOn(t, b, c)
	if res.Outcome != Recovered || res.Issued != 0 || res.FleetGeneration != 1 || res.Generation != 2 {
		t.Fatalf("b synced: %+v", res)
	}
	sa, ka := servedPair(t, filepath.Join(fe.root, "site"))
	sb, kb := servedPair(t, filepath.Join(b.Root, "site"))
	if sa != sb || !bytes.Equal(ka, kb) {
		t.Fatalf("a serves %s, b %s", sa, sb)
	}
	if hb.n.Load() != 2 || hb.serials[1] != sa {
		t.Fatalf("b's hook ran %d times (serials %v)", hb.n.Load(), hb.serials)
	}
	if got := fe.ca.issuedCount(); got != 2 {
		t.Fatalf("issued %d, want 2 (b's own, a's)", got)
	}
	// The local state knows the fleet's number: the next run is the fast
	// path, and Status says it.
	if res := runOn(t, b, c); res.Outcome != NotDue || res.FleetGeneration != 1 {
		t.Fatalf("b again: %+v", res)
	}
	if st := b.Status(c)[0]; st.FleetGeneration != 1 || st.Serial != sa || st.Err != nil {
		t.Fatalf("b's status: %+v", st)
	}
}

// An order another node journaled in the fleet and finalized before dying
// is finished by this node: no second order.
func TestFleetResumesJournaledOrder(t *testing.T) {
	fe := newFleetEnv(t)
	c := cert("site")
	keyPEM := fe.deadNodeOrder(t, c)
	res := runOn(t, fe.r, c)
	if res.Outcome != Recovered || res.Issued != 1 || res.FleetGeneration != 1 {
		t.Fatalf("resume: %+v", res)
	}
	if n, r := fe.ca.issues.Load(), fe.ca.resumes.Load(); n != 1 || r != 1 {
		t.Fatalf("issues %d, resumes %d; want 1, 1", n, r)
	}
	_, served := servedPair(t, filepath.Join(fe.root, "site"))
	if !bytes.Equal(served, keyPEM) {
		t.Fatal("the node does not serve the journaled order's key")
	}
	if rec := fe.fleet.record("site"); rec.Order != nil || rec.Number != 1 {
		t.Fatalf("fleet record after resume: %+v", rec)
	}
}

// A publish refused by fencing (the lock lost while the order ran)
// installs nothing here and is not counted; the journal stays in the fleet
// and the next holder finishes the order without a second one.
func TestFleetPublishFencedInstallsNothing(t *testing.T) {
	fe := newFleetEnv(t)
	c := cert("site")
	fe.ca.afterFinalize = func() { fe.fleet.revoke("site") }
	res := runOn(t, fe.r, c)
	if res.Outcome != Failed || !errors.Is(res.Err, errMemFenced) || res.Failures != 0 {
		t.Fatalf("fenced publish: %+v", res)
	}
	if _, err := os.Lstat(filepath.Join(fe.root, "site", "cert.pem")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("something was installed: %v", err)
	}
	if rec := fe.fleet.record("site"); rec.Order == nil || rec.Number != 0 || rec.Backoff.Failures != 0 {
		t.Fatalf("fleet record: %+v", rec)
	}
	fe.ca.afterFinalize = nil
	b := fe.node("b")
	if res := runOn(t, b, c); res.Outcome != Recovered || res.Issued != 1 {
		t.Fatalf("b: %+v", res)
	}
	if res := runOn(t, fe.r, c); res.Outcome != Recovered || res.Issued != 0 {
		t.Fatalf("a again: %+v", res)
	}
	if n := fe.ca.issues.Load(); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
	sa, _ := servedPair(t, filepath.Join(fe.root, "site"))
	sb, _ := servedPair(t, filepath.Join(b.Root, "site"))
	if sa != sb {
		t.Fatalf("a serves %s, b %s", sa, sb)
	}
}

// When the fleet cannot be consulted (View, Current, Lock or Record
// fails), the run is Deferred, nothing changes locally, nothing is
// ordered and nothing is counted.
func TestFleetUnavailableDefers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(f *memFleet)
	}{
		{"view", func(f *memFleet) { f.viewErr = errMemUnavailable }},
		{"current", func(f *memFleet) { f.currentErr = errMemUnavailable }},
		{"lock", func(f *memFleet) { f.lockErr = errMemUnavailable }},
		{"record", func(f *memFleet) { f.recordErr = errMemUnavailable }},
		{"journal", func(f *memFleet) { f.journalErr = errMemUnavailable }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := newFleetEnv(t)
			c := cert("site")
			b := fe.twoNodes(t, c)
			r := fe.r
			if tc.name == "current" {
				// b must install what a published: Current is read.
				if res := runOn(t, fe.r, c); res.Outcome != Renewed {
					t.Fatalf("a: %+v", res)
				}
				r = b
			}
			dir := filepath.Join(r.Root, "site")
			before := snapshotDir(t, dir)
			issued := fe.ca.issuedCount()
			fe.fleet.mu.Lock()
			tc.inject(fe.fleet)
			fe.fleet.mu.Unlock()
			var res Result
			if tc.name == "view" {
				// An invalid certificate in the same Run still fails as such.
				both := r.Run(context.Background(), Certificate{Name: "../bad", Domains: []string{"bad.example.test"}}, c)
				if both[0].Outcome != Failed || !errors.Is(both[0].Err, errInvalidCertificate) {
					t.Fatalf("invalid certificate: %+v", both[0])
				}
				res = both[1]
			} else {
				res = runOn(t, r, c)
			}
			if res.Outcome != Deferred || !errors.Is(res.Err, errMemUnavailable) || !errors.Is(res.Err, errDeferred) || res.Failures != 0 {
				t.Fatalf("%+v", res)
			}
			if !strings.Contains(res.Err.Error(), "the installed certificate is still served") {
				t.Errorf("error does not say the certificate is still served: %v", res.Err)
			}
			if want := fe.clk.Now().Add(fleetRetryWait); !res.NextCheck.Equal(want) {
				t.Errorf("NextCheck %v, want %v", res.NextCheck, want)
			}
			sameSnapshot(t, "lineage", before, snapshotDir(t, dir))
			if got := fe.ca.issuedCount(); got != issued {
				t.Errorf("issued %d → %d", issued, got)
			}
			if rec := fe.fleet.record("site"); rec.Backoff.Failures != 0 || rec.Order != nil {
				t.Errorf("fleet record changed: %+v", rec)
			}
		})
	}
}

// A fleet record that cannot be used, or a fleet generation that does not
// verify, fails the run naming it; the local certificate is untouched and
// nothing is counted.
func TestFleetBadRecordFails(t *testing.T) {
	t.Run("record", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		runOn(t, fe.r, c)
		fe.clk.Add(61 * 24 * time.Hour)
		dir := filepath.Join(fe.root, "site")
		before := snapshotDir(t, dir)
		fe.fleet.setErr("site", errors.New("record /fleet/site/meta: sealed with another key"))
		res := runOn(t, fe.r, c)
		if res.Outcome != Failed || !strings.Contains(res.Err.Error(), "/fleet/site/meta") || res.Failures != 0 {
			t.Fatalf("%+v", res)
		}
		sameSnapshot(t, "lineage", before, snapshotDir(t, dir))
		if n := fe.ca.issues.Load(); n != 1 {
			t.Fatalf("%d orders", n)
		}
	})
	t.Run("generation for other names", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		runOn(t, fe.r, c)
		dir := filepath.Join(fe.root, "site")
		before := snapshotDir(t, dir)
		key, _ := EC256.Generate()
		keyPEM, _ := encodeKey(key)
		certPEM, err := fe.ca.sign(key.Public(), []string{"other.example.test"})
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := fe.ca.issued("", certPEM)
		fe.fleet.mu.Lock()
		fe.fleet.rec("site").gen = FleetBundle{FleetGeneration: FleetGeneration{Number: 5, Serial: serialHex(leaf.Leaf.SerialNumber), NotBefore: leaf.Leaf.NotBefore, NotAfter: leaf.Leaf.NotAfter,
			Publisher: "rogue"}, Cert: certPEM, Chain: fe.ca.ca.PEM, Key: keyPEM}
		fe.fleet.mu.Unlock()
		res := runOn(t, fe.r, c)
		if res.Outcome != Failed || !errors.Is(res.Err, errVerify) || !strings.Contains(res.Err.Error(), "generation 5") || res.Failures != 0 {
			t.Fatalf("%+v", res)
		}
		sameSnapshot(t, "lineage", before, snapshotDir(t, dir))
	})
}

// A failure recorded by one node holds back every node until the fleet's
// not-before; Force bypasses it.
func TestFleetBackoffGatesEveryNode(t *testing.T) {
	fe := newFleetEnv(t)
	fe.r.Retry = backoff.Policy{Retries: -1}
	c := cert("site")
	b := fe.twoNodes(t, c)
	b.Retry = fe.r.Retry
	fe.ca.failNext(errors.New("CA unavailable"))
	res := runOn(t, fe.r, c)
	if res.Outcome != Failed || res.Failures != 1 {
		t.Fatalf("a: %+v", res)
	}
	rec := fe.fleet.record("site")
	if rec.Backoff.Failures != 1 || !rec.Backoff.RetryNotBefore.After(fe.clk.Now()) || !strings.Contains(rec.Backoff.LastError, "CA unavailable") || rec.Backoff.FailedConfig != c.configHash() {
		t.Fatalf("fleet backoff: %+v", rec)
	}
	requests := len(fe.ca.requests)
	res = runOn(t, b, c)
	if res.Outcome != BackingOff || res.Failures != 1 || !res.RetryNotBefore.Equal(rec.Backoff.RetryNotBefore) {
		t.Fatalf("b: %+v", res)
	}
	if len(fe.ca.requests) != requests {
		t.Fatal("b asked the CA while the fleet backs off")
	}
	// A second failure counts on from the fleet's count.
	fe.clk.Add(rec.Backoff.RetryNotBefore.Sub(fe.clk.Now()) + time.Second)
	fe.ca.failNext(errors.New("CA still unavailable"))
	if res := runOn(t, b, c); res.Outcome != Failed || res.Failures != 2 {
		t.Fatalf("b after the not-before: %+v", res)
	}
	if rec := fe.fleet.record("site"); rec.Backoff.Failures != 2 {
		t.Fatalf("fleet failures %d", rec.Backoff.Failures)
	}
	forced := c
	forced.Force = true
	if res := runOn(t, fe.r, forced); res.Outcome != Renewed || res.Failures != 0 {
		t.Fatalf("a forced: %+v", res)
	}
	if rec := fe.fleet.record("site"); rec.Backoff.Failures != 0 || !rec.Backoff.RetryNotBefore.IsZero() {
		t.Fatalf("publish did not clear the fleet backoff: %+v", rec)
	}
}

// Nodes that each have a valid certificate form a fleet without an
// order: the first publishes its own, the others install it.
func TestFleetAdoption(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	ha, hb := &counter{name: "a"}, &counter{name: "b"}
	ca, cb := cert("site", ha), cert("site", hb)
	fe.r.Fleet, b.Fleet = nil, nil
	runOn(t, fe.r, ca)
	fe.clk.Add(time.Hour) // b's certificate expires an hour after a's
	runOn(t, b, cb)
	fe.r.Fleet, b.Fleet = fe.fleet.node("a"), fe.fleet.node("b")
	issued := fe.ca.issuedCount()
	res := runOn(t, fe.r, ca)
	if res.Outcome != NotDue || res.FleetGeneration != 1 || ha.n.Load() != 1 {
		t.Fatalf("a adopts: %+v (hook ran %d times)", res, ha.n.Load())
	}
	sa, ka := servedPair(t, filepath.Join(fe.root, "site"))
	if rec := fe.fleet.record("site"); rec.Number != 1 || rec.Serial != sa || !bytes.Equal(rec.Key, ka) || rec.Publisher != "a" {
		t.Fatalf("fleet record: %+v", rec)
	}
	res = runOn(t, b, cb)
	if res.Outcome != Recovered || res.FleetGeneration != 1 || hb.n.Load() != 2 {
		t.Fatalf("b syncs: %+v (hook ran %d times)", res, hb.n.Load())
	}
	if sb, kb := servedPair(t, filepath.Join(b.Root, "site")); sb != sa || !bytes.Equal(ka, kb) {
		t.Fatal("b does not serve a's certificate")
	}
	if got := fe.ca.issuedCount(); got != issued {
		t.Fatalf("adoption ordered: %d → %d", issued, got)
	}
	_, locks, _ := fe.fleet.counts()
	if res := runOn(t, fe.r, ca); res.Outcome != NotDue || res.FleetGeneration != 1 {
		t.Fatalf("a again: %+v", res)
	}
	if _, l, _ := fe.fleet.counts(); l != locks {
		t.Fatal("the adopting node takes the fleet lock on every run")
	}
}

// The fleet lock held by another node: Locked naming it, or LockStuck
// once it has held it longer than any run can take.
func TestFleetLockHeldElsewhere(t *testing.T) {
	fe := newFleetEnv(t)
	c := cert("site")
	if _, err := fe.fleet.node("busy").Lock(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	res := runOn(t, fe.r, c)
	if res.Outcome != Locked || res.LockNode != "busy" || res.Err != nil || res.LockedSince.IsZero() {
		t.Fatalf("%+v", res)
	}
	fe.clk.Add(fe.r.LockBound(c) + time.Minute)
	res = runOn(t, fe.r, c)
	if res.Outcome != LockStuck || res.LockNode != "busy" || !strings.Contains(res.Err.Error(), "node busy") {
		t.Fatalf("%+v", res)
	}
	if n := fe.ca.issues.Load(); n != 0 {
		t.Fatalf("%d orders while another node holds the lock", n)
	}
}

// ServeUpdates in fleet mode installs a generation another node publishes
// as soon as the watch reports it, without its timer firing; a watch that
// ends is started again through the timer seam.
func TestFleetServeInstallsOnWatch(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	installed := make(chan hooks.Event, 10)
	hb := hooks.Func("reload", func(_ context.Context, ev hooks.Event) error { installed <- ev; return nil })
	c := cert("site")
	if res := runOn(t, fe.r, c); res.Outcome != Renewed {
		t.Fatalf("a: %+v", res)
	}
	timers := &fakeTimers{started: make(chan *fakeTimer)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.serve(ctx, nil, timers.start, cert("site", hb)) }()
	// waitInstall waits for b's hook to see serial, ignoring the timers
	// Serve starts meanwhile (none is fired) except one of d, returned.
	waitInstall := func(serial string, want time.Duration) *fakeTimer {
		t.Helper()
		var got *fakeTimer
		for {
			select {
			case ev := <-installed:
				if ev.Serial == serial && (want == 0 || got != nil) {
					return got
				}
			case ft := <-timers.started:
				if want != 0 && ft.d == want {
					return ft
				}
			case err := <-done:
				t.Fatalf("Serve returned: %v", err)
			}
		}
	}
	sa, _ := servedPair(t, filepath.Join(fe.root, "site"))
	waitInstall(sa, 0) // the first round syncs
	forced := c
	forced.Force = true
	for range 2 {
		if res := runOn(t, fe.r, forced); res.Outcome != Renewed {
			t.Fatalf("a forced: %+v", res)
		}
		sa, _ = servedPair(t, filepath.Join(fe.root, "site"))
		waitInstall(sa, 0)
	}
	// The watch ends: Serve watches again when its re-watch timer fires,
	// and first reads the fleet, since what was published while it was not
	// watching was reported to nobody.
	fe.fleet.endWatches()
	ft := waitInstall("", serveRewatchWait)
	if res := runOn(t, fe.r, forced); res.Outcome != Renewed {
		t.Fatalf("a forced while b does not watch: %+v", res)
	}
	sa, _ = servedPair(t, filepath.Join(fe.root, "site"))
	ft.fire <- fe.clk.Now()
	for caughtUp, waits := false, 0; !caughtUp; {
		select {
		case ev := <-installed:
			caughtUp = ev.Serial == sa
		case <-timers.started:
			// The wait Serve started before the re-watch timer fired
			// comes first (Serve may watch again as soon as this test
			// has received it); once it watches again, the next wait
			// starts only after the round that installs.
			if waits++; waits == 1 {
				continue
			}
			select {
			case ev := <-installed:
				caughtUp = ev.Serial == sa
			default:
				t.Fatal("Serve watched again and went back to waiting without installing what was published while it did not watch")
			}
		case err := <-done:
			t.Fatalf("Serve returned: %v", err)
		}
	}
	fe.fleet.mu.Lock()
	n := fe.fleet.watchCalls
	fe.fleet.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d watches, want 2", n)
	}
	if res := runOn(t, fe.r, forced); res.Outcome != Renewed {
		t.Fatalf("a forced: %+v", res)
	}
	sa, _ = servedPair(t, filepath.Join(fe.root, "site"))
	waitInstall(sa, 0)
	sb, _ := servedPair(t, filepath.Join(b.Root, "site"))
	if sb != sa {
		t.Fatalf("b serves %s, a %s", sb, sa)
	}
	cancel()
	for {
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Serve: %v", err)
			}
			return
		case <-timers.started:
		}
	}
}

// An order journaled in the fleet is finished by the next node that runs,
// even when the lineage is not due there: its certificate is never wasted.
func TestFleetResumesOrderWhenNotDue(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	c := cert("site")
	runOn(t, fe.r, c)
	if res := runOn(t, b, c); res.Outcome != Recovered {
		t.Fatalf("b: %+v", res)
	}
	fe.deadNodeOrder(t, c)
	res := runOn(t, b, c)
	if res.Outcome != Recovered || res.Issued != 1 || res.FleetGeneration != 2 {
		t.Fatalf("b: %+v", res)
	}
	if n := fe.ca.issues.Load(); n != 2 {
		t.Fatalf("%d orders, want 2", n)
	}
	if res := runOn(t, fe.r, c); res.Outcome != Recovered || res.FleetGeneration != 2 {
		t.Fatalf("a: %+v", res)
	}
}

// A generation holding the fleet's current certificate that a killed run
// wrote but did not make current is rolled forward (the fleet vouches for
// it), not installed a second time.
func TestFleetRollsForwardFleetGeneration(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	h := &counter{name: "b"}
	c := cert("site", h)
	runOn(t, fe.r, cert("site"))
	rec := fe.fleet.record("site")
	store, err := atomicfs.Open(filepath.Join(b.Root, "site"), atomicfs.Modes{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Install(atomicfs.Files{Cert: rec.Cert, Chain: rec.Chain, Key: rec.Key}); err != nil {
		t.Fatal(err)
	}
	res := runOn(t, b, c)
	if res.Outcome != Recovered || res.Generation != 1 || res.FleetGeneration != 1 || h.n.Load() != 1 {
		t.Fatalf("%+v (hook ran %d times)", res, h.n.Load())
	}
	if _, err := os.Stat(filepath.Join(b.Root, "site", "generations", "2")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a second generation was written: %v", err)
	}
}

// A certificate a node renewed outside the fleet (the -no-fleet escape
// hatch during an etcd outage) that outlives the fleet's is published to
// the fleet, not replaced by the older one; the other nodes install it.
func TestFleetAdoptsNewerLocalCertificate(t *testing.T) {
	fe := newFleetEnv(t)
	c := cert("site")
	b := fe.twoNodes(t, c)
	b.Fleet = nil
	if res := runOn(t, b, c); res.Outcome != Renewed {
		t.Fatalf("b alone: %+v", res)
	}
	sb, kb := servedPair(t, filepath.Join(b.Root, "site"))
	b.Fleet = fe.fleet.node("b")
	issued := fe.ca.issuedCount()
	if res := runOn(t, b, c); res.Outcome != NotDue || res.FleetGeneration != 2 || res.Issued != 0 {
		t.Fatalf("b back in the fleet: %+v", res)
	}
	if s, _ := servedPair(t, filepath.Join(b.Root, "site")); s != sb {
		t.Fatalf("b went back to %s from %s", s, sb)
	}
	if rec := fe.fleet.record("site"); rec.Number != 2 || rec.Serial != sb {
		t.Fatalf("fleet record %+v", rec)
	}
	if res := runOn(t, fe.r, c); res.Outcome != Recovered || res.Issued != 0 {
		t.Fatalf("a: %+v", res)
	}
	if sa, ka := servedPair(t, filepath.Join(fe.root, "site")); sa != sb || !bytes.Equal(ka, kb) {
		t.Fatal("a does not serve b's certificate")
	}
	if got := fe.ca.issuedCount(); got != issued {
		t.Fatalf("issued %d → %d", issued, got)
	}
}

// A fleet whose current generation has expired (an outage longer than its
// lifetime) is renewed by the next node that runs, not refused by every
// node's verification forever.
func TestFleetExpiredGenerationIsRenewed(t *testing.T) {
	fe := newFleetEnv(t)
	c := cert("site")
	runOn(t, fe.r, c)
	fe.clk.Add(91 * 24 * time.Hour)
	b := fe.node("b")
	res := runOn(t, b, c)
	if res.Outcome != Renewed || res.FleetGeneration != 2 || res.Generation != 1 {
		t.Fatalf("b: %+v", res)
	}
	if res := runOn(t, fe.r, c); res.Outcome != Recovered || res.FleetGeneration != 2 {
		t.Fatalf("a: %+v", res)
	}
}

// Changes the fleet's watch reported while Serve was busy run together,
// with one read of the fleet.
func TestFleetServeRunsChangesTogether(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	installed := make(chan hooks.Event, 10)
	hb := hooks.Func("reload", func(_ context.Context, ev hooks.Event) error { installed <- ev; return nil })
	certs := []Certificate{cert("one"), cert("two")}
	for _, res := range fe.r.Run(context.Background(), certs...) {
		if res.Outcome != Renewed {
			t.Fatalf("a: %+v", res)
		}
	}
	timers := &fakeTimers{started: make(chan *fakeTimer)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.serve(ctx, nil, timers.start, cert("one", hb), cert("two", hb)) }()
	for range 2 {
		<-installed // the first round installs both
	}
	// Serve is about to wait (its timer not taken yet): a publishes both.
	forced := slices.Clone(certs)
	for i := range forced {
		forced[i].Force = true
	}
	for _, res := range fe.r.Run(context.Background(), forced...) {
		if res.Outcome != Renewed {
			t.Fatalf("a forced: %+v", res)
		}
	}
	views, _, _ := fe.fleet.counts()
	<-timers.started // Serve waits, and finds the changes
	<-timers.started // and waits again
	if v, _, _ := fe.fleet.counts(); v != views+1 {
		t.Fatalf("Serve read the fleet %d times for the changes, want once", v-views)
	}
	seen := map[string]bool{}
	for range 2 {
		ev := <-installed
		seen[ev.Lineage] = true
	}
	if !seen["one"] || !seen["two"] {
		t.Fatalf("installed %v", seen)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v", err)
	}
}

// A failure caused on this machine before any order (a *LocalError not
// Ordered) is not written to the fleet: the other nodes are not held back
// by one node's broken configuration.
func TestFleetLocalFailureNotShared(t *testing.T) {
	fe := newFleetEnv(t)
	c := cert("site")
	b := fe.twoNodes(t, c)
	fe.ca.failNext(&LocalError{What: "listen address :80", Err: errors.New("bind: address already in use")})
	res := runOn(t, fe.r, c)
	if res.Outcome != Failed || !errors.Is(res.Err, ErrLocal) || res.Failures != 0 {
		t.Fatalf("a: %+v", res)
	}
	if rec := fe.fleet.record("site"); rec.Backoff.Failures != 0 || !rec.Backoff.RetryNotBefore.IsZero() || fe.fleet.fails != 0 {
		t.Fatalf("a local failure reached the fleet: %+v", rec)
	}
	if res := runOn(t, b, c); res.Outcome != Renewed {
		t.Fatalf("b: %+v", res)
	}
}

// A fleet that went back (etcd restored from an older backup) is not
// followed back: a node that installed a later fleet generation publishes
// it again.
func TestFleetNotFollowedBack(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	c := cert("site")
	runOn(t, fe.r, c)
	runOn(t, b, c)
	fe.fleet.mu.Lock()
	backup := *fe.fleet.rec("site")
	fe.fleet.mu.Unlock()
	forced := c
	forced.Force = true
	runOn(t, fe.r, forced)
	if res := runOn(t, b, c); res.Outcome != Recovered || res.FleetGeneration != 2 {
		t.Fatalf("b: %+v", res)
	}
	sb, _ := servedPair(t, filepath.Join(b.Root, "site"))
	fe.fleet.mu.Lock()
	*fe.fleet.rec("site") = backup
	fe.fleet.mu.Unlock()
	if res := runOn(t, b, c); res.Outcome != NotDue || res.Issued != 0 {
		t.Fatalf("b after the restore: %+v", res)
	}
	if s, _ := servedPair(t, filepath.Join(b.Root, "site")); s != sb {
		t.Fatalf("b went back from %s to %s", sb, s)
	}
	if rec := fe.fleet.record("site"); rec.Serial != sb || rec.Number != 2 {
		t.Fatalf("fleet record %+v", rec)
	}
}

// A holder paused between Journal and finalize past its lease (SIGSTOP):
// the next holder finds the journaled order still ready and finalizes it
// itself with the journaled key; when the paused holder wakes, its
// finalize is refused by the CA (it collects the same certificate) and its
// publish is fenced; its next run installs the fleet's generation. One
// order, one issuance, one serial on both nodes. (Before, the next holder
// dropped the ready order and placed a second one, and the paused holder's
// finalize issued a second certificate.)
func TestFleetPausedBeforeFinalizeOneIssuance(t *testing.T) {
	fe := newFleetEnv(t)
	c := cert("site")
	b := fe.twoNodes(t, c)
	issued0, orders0 := fe.ca.issuedCount(), fe.ca.issues.Load()

	// Node a's CA handle (the same CA: its orders directory) stops after
	// the journal until released.
	paused, err := loadFakeCA(fe.ca.dir)
	if err != nil {
		t.Fatal(err)
	}
	paused.now = fe.clk.Now
	paused.issues.Store(1000) // order IDs apart from fe.ca's (same PID)
	journaled := make(chan struct{})
	paused.afterJournal = func() { close(journaled) }
	paused.block = make(chan struct{})
	fe.r.Issuer = paused
	done := make(chan Result, 1)
	go func() { done <- fe.r.Run(context.Background(), c)[0] }()
	<-journaled
	fe.fleet.revoke(c.Name) // its lease expires while it is stopped

	rb := runOn(t, b, c)
	if rb.Outcome != Recovered || rb.Issued != 1 || rb.FleetGeneration != 2 {
		t.Fatalf("b: %+v", rb)
	}
	close(paused.block) // SIGCONT: a sends its finalize
	ra := <-done
	if ra.Outcome != Failed || !errors.Is(ra.Err, errMemFenced) || ra.Failures != 0 {
		t.Fatalf("the woken holder: %+v", ra)
	}
	if n := paused.refused.Load(); n != 1 {
		t.Errorf("the woken holder's finalize was refused %d times, want 1", n)
	}
	if n := fe.ca.issuedCount() - issued0; n != 1 {
		t.Errorf("issuances for one renewal: %d", n)
	}
	if n := fe.ca.issues.Load() - orders0 + paused.issues.Load() - 1000; n != 1 {
		t.Errorf("orders for one renewal: %d", n)
	}
	if ra := runOn(t, fe.r, c); ra.Outcome != Recovered || ra.FleetGeneration != 2 {
		t.Fatalf("a again: %+v", ra)
	}
	sa, ka := servedPair(t, filepath.Join(fe.root, "site"))
	sb, kb := servedPair(t, filepath.Join(b.Root, "site"))
	if rec := fe.fleet.record("site"); sa != sb || sa != rec.Serial || !bytes.Equal(ka, kb) || rec.Order != nil {
		t.Fatalf("a serves %s, b %s, the fleet has %s (order %v)", sa, sb, rec.Serial, rec.Order)
	}
}

// The fleet's records are deleted (the README's repair step, or a backup
// restore): the up-to-date node adopts its certificate as generation 1; a
// node that lagged one generation behind has a higher fleet number but an
// older certificate, and installs the fleet's instead of publishing its
// own over it: nobody goes back to the older certificate.
func TestFleetLaggingNodeDoesNotRepublishOlder(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	c := cert("site")
	runOn(t, fe.r, c)
	runOn(t, b, c)
	forced := c
	forced.Force = true
	fe.clk.Add(24 * time.Hour)
	runOn(t, fe.r, forced) // generation 2
	runOn(t, b, c)         // b installs generation 2
	fe.clk.Add(24 * time.Hour)
	runOn(t, fe.r, forced) // generation 3; b lags at 2
	newest, _ := servedPair(t, filepath.Join(fe.r.Root, "site"))
	fe.fleet.mu.Lock()
	fe.fleet.rec("site").gen = FleetBundle{}
	fe.fleet.mu.Unlock()
	if res := runOn(t, fe.r, c); res.Outcome != NotDue || res.FleetGeneration != 1 {
		t.Fatalf("a adopts: %+v", res)
	}
	if res := runOn(t, b, c); res.Outcome != Recovered || res.FleetGeneration != 1 || res.Issued != 0 {
		t.Fatalf("b: %+v", res)
	}
	if res := runOn(t, fe.r, c); res.Outcome != NotDue {
		t.Fatalf("a again: %+v", res)
	}
	for _, r := range []*Renewer{fe.r, b} {
		if s, _ := servedPair(t, filepath.Join(r.Root, "site")); s != newest {
			t.Errorf("%s serves %s, want the newest %s", r.Root, s, newest)
		}
	}
	if rec := fe.fleet.record("site"); rec.Serial != newest || rec.Number != 1 {
		t.Errorf("fleet record: generation %d serial %s, want 1 %s", rec.Number, rec.Serial, newest)
	}
}

// issueOnly is an Issuer that cannot resume orders.
type issueOnly struct{ Issuer }

// A fleet Renewer whose Issuer cannot resume orders is refused before it
// runs: it could only drop an order another node journaled and finalized,
// and order again (a second issuance).
func TestFleetIssuerMustResume(t *testing.T) {
	fe := newFleetEnv(t)
	fe.r.Issuer = issueOnly{fe.ca}
	c := cert("site")
	res := runOn(t, fe.r, c)
	if res.Outcome != Failed || !errors.Is(res.Err, ErrConfig) || !strings.Contains(res.Err.Error(), "Resumer") {
		t.Fatalf("Run: %+v", res)
	}
	if _, locks, _ := fe.fleet.counts(); locks != 0 || fe.ca.issuedCount() != 0 {
		t.Fatalf("it ran: %d locks, %d issued", locks, fe.ca.issuedCount())
	}
	if err := fe.r.Serve(t.Context(), c); !errors.Is(err, ErrConfig) {
		t.Fatalf("Serve: %v", err)
	}
	fe.r.Fleet = nil // the single-node path needs no Resumer
	if res := runOn(t, fe.r, c); res.Outcome != Renewed {
		t.Fatalf("without a fleet: %+v", res)
	}
}

// staleView is a Fleet whose View returns what it read earlier: the
// fleet changed between this node's View and its Lock.
type staleView struct {
	Fleet
	recs []FleetView
}

func (s staleView) View(ctx context.Context, certs []Certificate) ([]FleetView, error) {
	return s.recs, nil
}

// A node that cannot install the fleet's generation it found under the
// fleet lock (its disk full, its generation numbers exhausted) fails
// alone: the failure is not written to the fleet's backoff, which would
// hold every other node back for one node's disk.
func TestFleetSyncInstallFailureNotShared(t *testing.T) {
	fe := newFleetEnv(t)
	c := cert("site")
	b := fe.twoNodes(t, c)
	recs, err := b.Fleet.View(context.Background(), []Certificate{c})
	if err != nil {
		t.Fatal(err)
	}
	if res := runOn(t, fe.r, c); res.Outcome != Renewed || res.FleetGeneration != 2 {
		t.Fatalf("a: %+v", res)
	}
	// b's View is from before a published: it finds generation 2 under
	// the lock, and cannot install it.
	b.Fleet = staleView{Fleet: b.Fleet, recs: recs}
	if err := os.Mkdir(filepath.Join(b.Root, "site", "generations", "999999999"), 0o700); err != nil {
		t.Fatal(err)
	}
	res := runOn(t, b, c)
	if res.Outcome != Failed || !strings.Contains(res.Err.Error(), "exhausted") || res.Issued != 0 {
		t.Fatalf("b: %+v", res)
	}
	if rec := fe.fleet.record("site"); rec.Backoff.Failures != 0 || !rec.Backoff.RetryNotBefore.IsZero() || fe.fleet.fails != 0 {
		t.Fatalf("b's install failure reached the fleet: %d failures, not before %v: %s", rec.Backoff.Failures, rec.Backoff.RetryNotBefore, rec.Backoff.LastError)
	}
	fe.clk.Add(61 * 24 * time.Hour)
	if res := runOn(t, fe.r, c); res.Outcome != Renewed {
		t.Fatalf("a is held back: %+v", res)
	}
}

// A node that cannot order (its preflight fails: a busy port, DNS
// credentials missing) finds out before it takes the fleet lock: it does
// not hold the other nodes back nor wake their watches (a lock taken and
// released) for a failure of its own. Once fixed, it preflights once per
// run.
func TestFleetPreflightBeforeLock(t *testing.T) {
	fe := newFleetEnv(t)
	c := cert("site")
	b := fe.twoNodes(t, c)
	pca := &preflightCA{fakeCA: fe.ca}
	b.Issuer = pca
	pca.fail(&LocalError{What: "listen address :80", Err: errors.New("bind: address already in use")})
	_, locks, _ := fe.fleet.counts()
	res := runOn(t, b, c)
	if res.Outcome != Failed || !errors.Is(res.Err, ErrLocal) || res.Failures != 0 {
		t.Fatalf("b: %+v", res)
	}
	if _, after, _ := fe.fleet.counts(); after != locks {
		t.Fatalf("a node whose preflight failed took the fleet lock (%d locks)", after-locks)
	}
	pca.err.Store(nil)
	if res := runOn(t, b, c); res.Outcome != Renewed {
		t.Fatalf("b after the fix: %+v", res)
	}
	if n := pca.calls.Load(); n != 2 {
		t.Fatalf("%d preflights for two runs", n)
	}
}

// A lineage's names are changed: the fleet's generation for the old names
// is replaced like a local certificate for other names (due, ordered under
// the fleet lock, published over it), never installed, and never an error.
// A node still configured with the old names during the change serves its
// own certificate and publishes nothing over the other names'. An order
// journaled for the old names is dropped and placed anew.
func TestFleetNamesChanged(t *testing.T) {
	fe := newFleetEnv(t)
	b := fe.node("b")
	c := cert("site")
	runOn(t, fe.r, c)
	runOn(t, b, c)
	old, _ := servedPair(t, filepath.Join(b.Root, "site"))
	grown := c
	grown.Domains = append(slices.Clone(c.Domains), "api.site.example.test")

	res := runOn(t, fe.r, grown)
	if res.Outcome != Renewed || res.FleetGeneration != 2 || res.Issued != 1 {
		t.Fatalf("a with the new names: %+v", res)
	}
	if rec := fe.fleet.record("site"); !slices.Equal(rec.Domains, normDomains(grown.Domains)) {
		t.Fatalf("fleet generation for %v, want %v", rec.Domains, normDomains(grown.Domains))
	}
	// b, not yet reconfigured, keeps its own and publishes nothing.
	_, _, publishes := fe.fleet.counts()
	if res := runOn(t, b, c); res.Outcome != NotDue || res.Err != nil {
		t.Fatalf("b with the old names: %+v", res)
	}
	if s, _ := servedPair(t, filepath.Join(b.Root, "site")); s != old {
		t.Fatalf("b serves %s, want its own %s", s, old)
	}
	if _, _, p := fe.fleet.counts(); p != publishes {
		t.Fatalf("b published over the new names' generation")
	}
	// Reconfigured, b installs the fleet's.
	if res := runOn(t, b, grown); res.Outcome != Recovered || res.FleetGeneration != 2 || res.Issued != 0 {
		t.Fatalf("b with the new names: %+v", res)
	}
	sa, _ := servedPair(t, filepath.Join(fe.r.Root, "site"))
	if sb, _ := servedPair(t, filepath.Join(b.Root, "site")); sb != sa {
		t.Fatalf("b serves %s, a %s", sb, sa)
	}

	// An order journaled for the old names (by a node with the old
	// configuration that died after finalize) is dropped, not resumed.
	fe.clk.Add(61 * 24 * time.Hour)
	fe.deadNodeOrder(t, c)
	issued := fe.ca.issuedCount()
	if res := runOn(t, fe.r, grown); res.Outcome != Renewed || res.FleetGeneration != 3 {
		t.Fatalf("a with an order for the old names journaled: %+v", res)
	}
	if n := fe.ca.issuedCount() - issued; n != 1 {
		t.Fatalf("%d issued, want 1 for the new names", n)
	}
	if leaf := served(t, filepath.Join(fe.r.Root, "site")); !slices.Equal(leafNames(leaf), normDomains(grown.Domains)) {
		t.Fatalf("a serves a certificate for %v", leafNames(leaf))
	}
	if rec := fe.fleet.record("site"); rec.Order != nil {
		t.Fatalf("order still journaled: %+v", rec.Order)
	}
}
