package crashtest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/internal/lossyfs"
	"github.com/renewkit/renewkit/internal/served"
)

// TestPowerLossDuringRecovery cuts the power during the recovery from an
// earlier power cut: recovery must itself be power-safe. A forced renewal
// with hooks is recorded as in TestPowerLoss. On disks its cuts leave after
// finalize reached the CA, with everything unsynced lost (the order is
// journaled and must be finished, not ordered again; a generation may be
// half installed), the normal run that recovers is recorded in turn, on a
// fresh lossyfs mount that holds the disk, and every cut of that recovery
// is checked as TestPowerLoss checks its cuts: the finalize sent and the
// hooks run before the first cut count as done. The default takes three
// such disks (the first, middle and last distinct one on which the recovery
// has work); RENEWKIT_POWERLOSS_FULL=1 takes every distinct one (each
// recovery checked with the default's disks: bounded).
func TestPowerLossDuringRecovery(t *testing.T) {
	t.Parallel()
	i := slices.IndexFunc(powerScenarios, func(sc powerScenario) bool { return sc.name == "forced-renewal-with-hooks" })
	pc := powerRecord(t, powerScenarios[i])
	picks := recoveryDisks(pc, powerFull())
	if len(picks) == 0 {
		t.Fatalf("no cut after finalize leaves a disk with recovery work (finalize at the cuts %v of 0..%d)", pc.finalizeCuts(), pc.rec.Len())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-44s %6s %6s %6s %8s %s\n", "FIRST CUT", "OPS", "FSYNCS", "CUTS", "DISTINCT", "PROBLEMS")
	for _, pk := range picks {
		name := fmt.Sprintf("cut-%d-%s", pk.Cut, pk.Kind)
		t.Run(name, func(t *testing.T) {
			tl := recoveryUnderPowerLoss(t, pc, pk)
			fmt.Fprintf(&b, "%-44s %6d %6d %6d %8d %d\n", fmt.Sprintf("%v (after %s)", pk, firstLines(pc.lastOp(pk.Cut), 1)), tl.ops, tl.fsyncs, tl.cuts, tl.checked, len(tl.problems))
		})
	}
	t.Logf("power cuts during the recovery from a power cut (full=%v, seed %d):\n%s", powerFull(), powerSeed(t), b.String())
}

// recoveryDisks returns the distinct disks of pc's recording, at cuts
// after finalize reached the CA, with everything unsynced lost, on which a
// recovery has work to do (they differ from the disk the run left): all of
// them, or only the first, middle and last.
func recoveryDisks(pc *powerCheck, all bool) []lossyfs.Disk {
	final := pc.rec.Final(powerTops...).Digest
	seen := map[string]bool{final: true}
	var picks []lossyfs.Disk
	for p := 0; p <= pc.rec.Len(); p++ {
		if !isCut(pc.rec, p) || !pc.finalizeBegun(p) {
			continue
		}
		d := pc.rec.Disk(p, "durable", func(int) bool { return false }, powerTops...)
		if !seen[d.Digest] {
			seen[d.Digest] = true
			picks = append(picks, d)
		}
	}
	if !all && len(picks) > 3 {
		picks = []lossyfs.Disk{picks[0], picks[len(picks)/2], picks[len(picks)-1]}
	}
	return picks
}

// recoveryUnderPowerLoss records the normal run on the disk d (left by a
// cut of pc's recording) on a new lossyfs mount, and checks its cuts.
func recoveryUnderPowerLoss(t *testing.T, pc *powerCheck, d lossyfs.Disk) powerTally {
	dir := t.TempDir()
	backing := filepath.Join(dir, "backing")
	if err := os.Mkdir(backing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Materialize(backing); err != nil {
		t.Fatal(err)
	}
	for _, sub := range powerTops {
		if err := os.MkdirAll(filepath.Join(backing, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fsys, mnt := mountLossyAt(t, dir)
	ds := *pc.s
	ds.t, ds.dir, ds.config = t, dir, filepath.Join(dir, "renewkit.toml")
	ds.root, ds.account = filepath.Join(mnt, powerRoot), filepath.Join(mnt, powerAcct)
	ds.setHookLog(filepath.Join(mnt, powerHooks))
	old := ""
	if snap, err := served.Check(ds.lineage("www")); err == nil {
		old = snap.Serial
	}

	prev := pc.cur.Swap(fsys)
	defer pc.cur.Store(prev)
	earlier := len(pc.ca.Finalizations(pc.domains...))
	fsys.Checkpoint()
	if r := ds.run(nil); r.code != 0 {
		t.Fatalf("the recovery on %v: %v", d, r)
	}
	snap, err := served.Check(ds.lineage("www"))
	if err != nil {
		t.Fatalf("after the recovery on %v: %v", d, err)
	}
	rc := &powerCheck{
		t: t, name: fmt.Sprintf("recovery on %v", d), s: &ds, rec: fsys.Recording(), ca: pc.ca, cur: pc.cur,
		domains: pc.domains, old: old, new: snap.Serial, seen: map[string]string{},
		finals:      finalizeSeqs(pc.ca, pc.domains, earlier),
		begunBefore: pc.finalizeBegun(d.Cut),
		baseHooks:   pc.hooksRun(d.Cut),
		fewSubsets:  true,
	}
	if rc.begunBefore && old != pc.old && old != "" && old != pc.new {
		t.Fatalf("the disk serves %s, neither the old %s nor the new %s", old, pc.old, pc.new)
	}
	return rc.run()
}
