package renew

import (
	"context"
	"testing"
	"time"

	"github.com/renewkit/renewkit/expiry"
)

// ariFleet sets up nodes a and b of a fleet whose CA speaks ARI (a window
// 50 days ahead): a issued c's certificate, b installed it and, deciding,
// fetched the window and shared it.
func ariFleet(t *testing.T, c Certificate) (*fleetEnv, *Renewer) {
	t.Helper()
	fe := newFleetEnv(t)
	fe.r.Issuer = ariCA{fe.ca}
	b := fe.node("b")
	b.Issuer = ariCA{fe.ca}
	now := fe.clk.Now()
	fe.ca.mu.Lock()
	fe.ca.window = &expiry.Window{Start: now.Add(50 * 24 * time.Hour), End: now.Add(52 * 24 * time.Hour)}
	fe.ca.mu.Unlock()
	if res := runOn(t, fe.r, c); res.Outcome != Renewed {
		t.Fatalf("a: %+v", res)
	}
	if res := runOn(t, b, c); res.Outcome != Recovered {
		t.Fatalf("b: %+v", res)
	}
	if n := fe.ca.ariCalls.Load(); n != 1 {
		t.Fatalf("%d ARI fetches setting up, want 1 (b's)", n)
	}
	rec := fe.fleet.record(c.Name)
	if rec.ARI.Serial != rec.Serial || rec.ARI.Serial == "" || !rec.ARI.Start.Equal(now.Add(50*24*time.Hour)) || !rec.ARI.NextFetch.After(fe.clk.Now()) {
		t.Fatalf("the fleet's ARI window after b fetched: %+v", rec)
	}
	return fe, b
}

// ariOf returns the ARI state r's lineage c has on disk.
func ariOf(t *testing.T, r *Renewer, c Certificate) *ariState {
	t.Helper()
	st, err := loadState(r.lineageDir(c.Name))
	if err != nil {
		t.Fatal(err)
	}
	return st.ARI
}

// One node per interval asks the CA for the renewal window; the others
// adopt the fleet's, and a node whose window is the fleet's fresh one stays
// on the fast path.
func TestFleetARIShared(t *testing.T) {
	c := cert("site")
	fe, b := ariFleet(t, c)
	// a has no window yet: it adopts the one b shared, without asking.
	res := runOn(t, fe.r, c)
	if res.Outcome != NotDue || fe.ca.ariCalls.Load() != 1 {
		t.Fatalf("a adopting: %+v, %d ARI fetches", res, fe.ca.ariCalls.Load())
	}
	rec := fe.fleet.record(c.Name)
	if a := ariOf(t, fe.r, c); a == nil || a.Serial != rec.ARI.Serial || !a.Start.Equal(rec.ARI.Start) || !a.End.Equal(rec.ARI.End) ||
		!a.NextFetch.Equal(rec.ARI.NextFetch) || a.Picked.Before(a.Start) || !a.Picked.Before(a.End) {
		t.Fatalf("a's window %+v, the fleet's %+v", a, rec)
	}
	if res.RenewAt.Before(rec.ARI.Start) {
		t.Fatalf("a decided without the window: %+v", res)
	}
	// Past the interval: the first node to run fetches and shares, the
	// other reads the fleet's window.
	fe.clk.Add(7 * time.Hour)
	if res := runOn(t, fe.r, c); res.Outcome != NotDue || fe.ca.ariCalls.Load() != 2 {
		t.Fatalf("a fetching: %+v, %d ARI fetches", res, fe.ca.ariCalls.Load())
	}
	if n := fe.fleet.ariWrites(); n != 2 {
		t.Fatalf("%d ARI writes, want 2", n)
	}
	for range 2 {
		if res := runOn(t, b, c); res.Outcome != NotDue || fe.ca.ariCalls.Load() != 2 {
			t.Fatalf("b: %+v, %d ARI fetches", res, fe.ca.ariCalls.Load())
		}
	}
}

// A window the fleet holds for another certificate (an older serial) is
// not adopted: the node fetches its own and shares it.
func TestFleetARIOtherSerialNotAdopted(t *testing.T) {
	c := cert("site")
	fe, _ := ariFleet(t, c)
	fe.clk.Add(7 * time.Hour)
	now := fe.clk.Now()
	// A window in the past would make the lineage due at once.
	fe.fleet.mu.Lock()
	fe.fleet.rec(c.Name).ari = FleetARI{Serial: "0badc0de", Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour), NextFetch: now.Add(time.Hour)}
	fe.fleet.mu.Unlock()
	if res := runOn(t, fe.r, c); res.Outcome != NotDue || fe.ca.ariCalls.Load() != 2 {
		t.Fatalf("a: %+v, %d ARI fetches", res, fe.ca.ariCalls.Load())
	}
	if rec := fe.fleet.record(c.Name); rec.ARI.Serial != rec.Serial || !rec.ARI.Start.After(now) {
		t.Fatalf("the fleet's window after a fetched: %+v", rec)
	}
}

// A fleet window for the right serial whose next fetch is implausibly far
// away (a buggy or hostile record saying "never look again") is not
// believed: the node fetches the window itself and shares a sane one.
func TestFleetARIFarFutureNotAdopted(t *testing.T) {
	c := cert("site")
	fe, _ := ariFleet(t, c)
	fe.clk.Add(7 * time.Hour)
	now := fe.clk.Now()
	serial := fe.fleet.record(c.Name).Serial
	fe.fleet.mu.Lock()
	fe.fleet.rec(c.Name).ari = FleetARI{Serial: serial, Start: now.Add(24 * time.Hour), End: now.Add(48 * time.Hour), NextFetch: now.Add(10 * 365 * 24 * time.Hour)}
	fe.fleet.mu.Unlock()
	if res := runOn(t, fe.r, c); res.Outcome != NotDue || fe.ca.ariCalls.Load() != 2 {
		t.Fatalf("a: %+v, %d ARI fetches, want the window fetched again", res, fe.ca.ariCalls.Load())
	}
	if rec := fe.fleet.record(c.Name); rec.ARI.NextFetch.Sub(now) > 2*fe.r.ariInterval() {
		t.Fatalf("the fleet's window after a fetched still says next fetch %s", rec.ARI.NextFetch)
	}
}

// When another node holds the fleet lock, or the fleet cannot be reached,
// the node that fetched keeps the window for itself: nothing is written to
// the fleet, and the run is not deferred for it.
func TestFleetARINotShared(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(fe *fleetEnv, c Certificate)
	}{
		{"held", func(fe *fleetEnv, c Certificate) {
			if _, err := fe.fleet.node("busy").Lock(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}},
		{"unavailable", func(fe *fleetEnv, c Certificate) {
			fe.fleet.mu.Lock()
			defer fe.fleet.mu.Unlock()
			fe.fleet.lockErr = errMemUnavailable
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cert("site")
			fe, _ := ariFleet(t, c)
			fe.clk.Add(7 * time.Hour)
			before := fe.fleet.record(c.Name)
			tc.inject(fe, c)
			res := runOn(t, fe.r, c)
			if res.Outcome != NotDue || res.Err != nil || fe.ca.ariCalls.Load() != 2 {
				t.Fatalf("a: %+v, %d ARI fetches", res, fe.ca.ariCalls.Load())
			}
			if after, n := fe.fleet.record(c.Name), fe.fleet.ariWrites(); n != 1 || !after.ARI.NextFetch.Equal(before.ARI.NextFetch) {
				t.Fatalf("the fleet's window was written: %d writes, %+v", n, after)
			}
			if a := ariOf(t, fe.r, c); a == nil || a.Serial != before.Serial || !a.NextFetch.After(fe.clk.Now()) {
				t.Fatalf("a's window %+v", a)
			}
		})
	}
}

// A node whose certificate is not the fleet's current one (here the fleet
// moved on to other names, as during a rolling change of names) keeps the
// window it fetches for itself: writing it would overwrite the window of
// the fleet's certificate, and the nodes serving that one would fetch and
// write theirs back every interval.
func TestFleetARINotSharedForAnotherCertificate(t *testing.T) {
	c := cert("site")
	fe, _ := ariFleet(t, c)
	fe.fleet.mu.Lock()
	r := fe.fleet.rec(c.Name)
	r.gen.Number++
	r.gen.Serial = "0ffe12"
	r.gen.Domains = []string{"other.example.test"}
	fe.fleet.mu.Unlock()
	writes := fe.fleet.ariWrites()
	fe.clk.Add(7 * time.Hour)
	if res := runOn(t, fe.r, c); res.Outcome != NotDue || fe.ca.ariCalls.Load() != 2 {
		t.Fatalf("a: %+v, %d ARI fetches", res, fe.ca.ariCalls.Load())
	}
	if n := fe.fleet.ariWrites(); n != writes {
		t.Fatalf("%d ARI windows written to the fleet for a certificate that is not its current one", n-writes)
	}
	if a := ariOf(t, fe.r, c); a == nil || !fe.clk.Now().Before(a.NextFetch) {
		t.Fatalf("a's own window after fetching: %+v", a)
	}
}
