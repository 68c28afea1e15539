package renew

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// planOne is the Plan of c on r, failing the test on an error.
func planOne(t *testing.T, r *Renewer, c Certificate) Plan {
	t.Helper()
	ps, err := r.Plan(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

// The plan says what the run then does, in each case the fleet's
// generation is or is not installed (issue 23: the CLI's dry run said
// "would install" for generations renew refuses).
func TestPlanIsWhatRunDoes(t *testing.T) {
	t.Run("single node", func(t *testing.T) {
		e := newEnv(t)
		c := cert("site")
		if p := planOne(t, e.r, c); p.Fleet != nil || p.Install || p.Adopt || !p.Due {
			t.Fatalf("plan: %+v", p)
		}
	})
	t.Run("fleet generation installed", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		runOn(t, fe.r, c)
		b := fe.node("b")
		p := planOne(t, b, c)
		if !p.Install || p.NotInstalled != "" || p.Adopt || p.Fleet == nil || p.Fleet.Current.Number != 1 {
			t.Fatalf("plan: %+v", p)
		}
		if res := runOn(t, b, c); res.Outcome != Recovered || res.FleetGeneration != 1 {
			t.Fatalf("run: %+v", res)
		}
		if p := planOne(t, b, c); p.Install || p.NotInstalled != "" || p.Due {
			t.Fatalf("plan once installed: %+v", p)
		}
	})
	t.Run("forced after another node's renewal", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		b := fe.node("b")
		runOn(t, fe.r, c)
		runOn(t, b, c)
		forced := c
		forced.Force = true
		runOn(t, fe.r, forced)
		p := planOne(t, b, forced)
		if !p.Install || p.Due {
			t.Fatalf("plan: %+v, want the fleet's generation installed as the forced renewal", p)
		}
		if res := runOn(t, b, forced); res.Outcome != Recovered || res.Issued != 0 {
			t.Fatalf("run: %+v", res)
		}
	})
	t.Run("expired", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		runOn(t, fe.r, c)
		fe.clk.Add(91 * 24 * time.Hour)
		b := fe.node("b")
		p := planOne(t, b, c)
		if p.Install || !strings.Contains(p.NotInstalled, "expired") || !p.Due {
			t.Fatalf("plan: %+v", p)
		}
		if res := runOn(t, b, c); res.Outcome != Renewed || res.FleetGeneration != 2 {
			t.Fatalf("run: %+v", res)
		}
	})
	t.Run("other names", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		runOn(t, fe.r, c)
		b := fe.node("b")
		grown := c
		grown.Domains = append([]string{"more.example.test"}, c.Domains...)
		p := planOne(t, b, grown)
		if p.Install || !strings.Contains(p.NotInstalled, "other names") {
			t.Fatalf("plan: %+v", p)
		}
		if res := runOn(t, b, grown); res.Outcome != Renewed {
			t.Fatalf("run: %+v", res)
		}
	})
	t.Run("outlived by the local certificate", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		b := fe.twoNodes(t, c)
		b.Fleet = nil
		if res := runOn(t, b, c); res.Outcome != Renewed {
			t.Fatalf("b alone: %+v", res)
		}
		b.Fleet = fe.fleet.node("b")
		p := planOne(t, b, c)
		if p.Install || !strings.Contains(p.NotInstalled, "outlives") || !p.Adopt {
			t.Fatalf("plan: %+v", p)
		}
		if res := runOn(t, b, c); res.Outcome != NotDue || res.FleetGeneration != 2 || res.Issued != 0 {
			t.Fatalf("run: %+v", res)
		}
	})
	t.Run("fails verification", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		runOn(t, fe.r, c)
		b := fe.node("b")
		fe.fleet.mu.Lock()
		fe.fleet.rec("site").gen.Key = []byte("not a key")
		fe.fleet.mu.Unlock()
		p := planOne(t, b, c)
		if p.Install || !strings.Contains(p.NotInstalled, "not installing the fleet's generation 1") {
			t.Fatalf("plan: %+v", p)
		}
		if res := runOn(t, b, c); res.Outcome != Failed || !errors.Is(res.Err, errVerify) {
			t.Fatalf("run: %+v", res)
		}
	})
	t.Run("adoption", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		fe.r.Fleet = nil
		runOn(t, fe.r, c)
		fe.r.Fleet = fe.fleet.node("a")
		if p := planOne(t, fe.r, c); !p.Adopt || p.Install {
			t.Fatalf("plan: %+v", p)
		}
		if res := runOn(t, fe.r, c); res.Outcome != NotDue || res.FleetGeneration != 1 {
			t.Fatalf("run: %+v", res)
		}
	})
	t.Run("unusable record", func(t *testing.T) {
		fe := newFleetEnv(t)
		c := cert("site")
		runOn(t, fe.r, c)
		fe.fleet.setErr("site", errors.New("record /fleet/site/meta: sealed with another key"))
		if p := planOne(t, fe.r, c); p.Fleet == nil || p.Fleet.Err == nil || p.Install {
			t.Fatalf("plan: %+v", p)
		}
	})
	t.Run("fleet unavailable", func(t *testing.T) {
		fe := newFleetEnv(t)
		fe.fleet.viewErr = errMemUnavailable
		ps, err := fe.r.Plan(context.Background(), cert("site"))
		if !errors.Is(err, errMemUnavailable) || len(ps) != 1 || !ps[0].Due {
			t.Fatalf("plan: %+v, %v", ps, err)
		}
	})
}
