package crashtest_test

import (
	"path/filepath"
	"testing"

	"github.com/renewkit/renewkit/internal/etcdtest"
)

// TestPowerLossFleetInstall cuts the power during a fleet node's local
// install of the fleet's current generation. Node n0 forms a fleet of two
// and renews; node n1, whose storage root is on a lossyfs mount (its
// account is the fleet's shared one, elsewhere), runs and installs the
// published generation: that run is recorded, and every disk its cuts can
// leave is checked as TestPowerLoss checks them. The generation was
// finalized before the recording, so a rerun on any disk must serve it
// without an order: (1) one whole generation, the old or the fleet's, is
// served; (2) a normal run of n1 there exits 0, leaves nothing behind and
// a third run does nothing; (3) that run installs the fleet's generation,
// and no node orders or publishes (the fleet's generation stays the same);
// (4) every generation current on the disk had n1's deploy hook run;
// (5) once the install reported success, losing every unsynced write still
// serves the fleet's generation; (6) state.json is never torn.
func TestPowerLossFleetInstall(t *testing.T) {
	t.Parallel()
	cl := etcdtest.Start(t, 1)
	e := newFleet(t, cl, fleetOptions{nodes: 2})
	a, b := e.nodes[0], e.nodes[1]
	fsys, mnt := mountLossyAt(t, b.dir)
	b.root = filepath.Join(mnt, powerRoot)
	b.setHookLog(filepath.Join(mnt, powerHooks)) // rewrites the configuration
	old, _ := e.form()
	if r := a.mustRun(0, "-force", "all"); r.outcome("www") != "renewed" {
		t.Fatalf("node %s's forced renewal: %v", a.name, r)
	}
	serial, gen := e.fleetSerial("www")
	if serial == old {
		t.Fatalf("the forced renewal did not publish a new generation (serial %s)", serial)
	}
	orders0 := e.orders()

	fsys.Checkpoint()
	if r := b.run(nil); r.code != 0 || r.outcome("www") != "recovered" {
		t.Fatalf("node %s installing the fleet's generation %d: want exit 0 and recovered, got %v", b.name, gen, r)
	}
	if got, err := b.servedSerial("www"); err != nil || got != serial {
		t.Fatalf("node %s after the install serves %q (%v), want %s", b.name, got, err, serial)
	}
	pc := &powerCheck{
		t: t, name: "fleet-node-install", s: b.setup, rec: fsys.Recording(), ca: e.ca,
		domains: e.domains(), old: old, new: serial, seen: map[string]string{},
		begunBefore: true, accountOutside: true,
	}
	tl := pc.run()
	if n := e.orders() - orders0; n != 0 {
		t.Errorf("the reruns on the disks placed %d orders; the fleet's generation was there to install", n)
	}
	if s, g := e.fleetSerial("www"); s != serial || g != gen {
		t.Errorf("the fleet's generation changed from %d (%s) to %d (%s): a rerun published", gen, serial, g, s)
	}
	t.Logf("fleet node's install under power loss (seed %d): %d operations, %d fsyncs, %d cuts, %d disks, %d distinct checked, %d problems",
		powerSeed(t), tl.ops, tl.fsyncs, tl.cuts, tl.disks, tl.checked, len(tl.problems))
}
