package crashtest_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/renewkit/renewkit/internal/lossyfs"
	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
)

// The layout of a power-loss setup's mount: the storage root and the
// account are the disk under test; the reload log is the hooks' record of
// what they did (read as of a cut, never lost). Whether finalize had
// reached the CA by a cut is the CA's record (testacme's Finalizations).
const (
	powerData  = "data"
	powerRoot  = "root"
	powerAcct  = "account"
	powerHooks = "reloads.log"
)

// powerTops are the parts of the mount a power cut is simulated on.
var powerTops = []string{powerRoot, powerAcct}

// powerSeed seeds the choice of random subsets: the suite is
// deterministic. RENEWKIT_POWERLOSS_SEED=N replaces it (to show that a
// catch does not depend on it).
func powerSeed(t testing.TB) uint64 {
	v := os.Getenv("RENEWKIT_POWERLOSS_SEED")
	if v == "" {
		return 14
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("RENEWKIT_POWERLOSS_SEED=%q: %v", v, err)
	}
	return n
}

// powerFull reports whether RENEWKIT_POWERLOSS_FULL=1 asks for the
// exhaustive version: 24 random subsets per cut instead of 2, besides the
// systematic disks, and the fsync audit.
func powerFull() bool { return os.Getenv("RENEWKIT_POWERLOSS_FULL") == "1" }

// powerFailFast reports whether RENEWKIT_POWERLOSS_FAILFAST=1 asks a
// scenario to stop at its first problem (.ci/mutants: a caught mutant
// need not be explored further).
func powerFailFast() bool { return os.Getenv("RENEWKIT_POWERLOSS_FAILFAST") == "1" }

// powerSubsets is the number of random subsets of the unsynced operations
// kept per cut, besides the systematic disks (see lossyfs's
// Recording.Disks: none, all, each alone, all but each, each prefix),
// which every run checks whatever the seed.
func powerSubsets() int {
	if powerFull() {
		return 24
	}
	return 2
}

// disks returns the disks checked at the cut p of pc's recording: the
// systematic ones and powerSubsets random subsets (2 with fewSubsets).
func (pc *powerCheck) disks(p int, rng *rand.Rand) []lossyfs.Disk {
	n := powerSubsets()
	if pc.fewSubsets {
		n = min(n, 2)
	}
	return pc.rec.Disks(p, n, true, rng, powerTops...)
}

// finalizeSequence returns a CA option that records, with each finalize
// request's arrival, the position among the operations of the lossyfs
// that fs holds at that moment (0 while it holds none). The power-loss
// checks learn from the CA, not from the program's own record, whether an
// issuance may have begun before a cut.
func finalizeSequence(fs *atomic.Pointer[lossyfs.FS]) func() int64 {
	return func() int64 {
		if f := fs.Load(); f != nil {
			return f.Seq()
		}
		return 0
	}
}

// mountLossy mounts a lossyfs at s.dir/data (backed by s.dir/backing) and
// moves s's storage root, account directory and reload log into it.
func mountLossy(t *testing.T, s *setup) *lossyfs.FS {
	t.Helper()
	fsys, mnt := mountLossyAt(t, s.dir)
	s.root, s.account = filepath.Join(mnt, powerRoot), filepath.Join(mnt, powerAcct)
	s.setHookLog(filepath.Join(mnt, powerHooks))
	return fsys
}

// mountLossyAt mounts a lossyfs at dir/data, backed by dir/backing (made
// if missing; what it holds is the mount's durable start), until the test
// ends, and returns it and its mount point. Where FUSE is
// unavailable the test skips, or fails under CI=true.
func mountLossyAt(t *testing.T, dir string) (*lossyfs.FS, string) {
	t.Helper()
	unavailable := func(err error) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("power-loss suite: FUSE is required under CI=true: %v", err)
		}
		t.Skipf("power-loss suite skipped: %v (install Debian's fuse3 and run as root)", err)
	}
	if err := lossyfs.Available(); err != nil {
		unavailable(err)
	}
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, powerData)
	for _, d := range []string{backing, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil { // backing may hold a disk already
			t.Fatal(err)
		}
	}
	fsys, err := lossyfs.Mount(backing, mnt)
	if err != nil {
		unavailable(err)
	}
	t.Cleanup(func() {
		if err := fsys.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return fsys, mnt
}

// setHookLog makes the deploy hook log to path.
func (s *setup) setHookLog(path string) {
	s.hookLog = path
	s.hooks = fmt.Sprintf("[[%q, %q, %q]]", bin.hook, "reload", path)
	s.writeConfig()
}

// powerScenario is a recorded run whose power cuts are checked.
type powerScenario struct {
	name string
	// top is extra top-level configuration.
	top string
	// prepare brings the setup to the start of the recorded run (unrecorded:
	// its result counts as durable) and returns the recorded run's arguments.
	prepare func(t *testing.T, s *setup) []string
	// finalized: the order the recorded run finishes was finalized before
	// it began (by a run killed after finalize). The finalize requests the
	// CA receives during the recorded run are its own record.
	finalized bool
}

var powerScenarios = []powerScenario{
	{name: "first-issuance", prepare: func(*testing.T, *setup) []string { return nil }},
	{name: "forced-renewal-with-hooks", prepare: func(t *testing.T, s *setup) []string {
		s.mustRun(0)
		return []string{"-force", "all"}
	}},
	{name: "renewal-with-pruning", top: "keep = 2", prepare: func(t *testing.T, s *setup) []string {
		s.mustRun(0)
		s.mustRun(0, "-force", "all")
		return []string{"-force", "all"}
	}},
	{name: "recovery-of-finalized-order", finalized: true, prepare: func(t *testing.T, s *setup) []string {
		s.mustRun(0)
		if r := s.run([]string{"RENEWKIT_CRASH_AT=acmeissuer.after-finalize"}, "-force", "all"); !r.killed {
			t.Fatalf("the run was not killed after finalize: %v", r)
		}
		return nil
	}},
}

// powerTally is what one scenario's cuts came to.
type powerTally struct {
	ops, fsyncs, cuts, disks, checked int
	problems                          []string
	// evidence: what each fsync of the run protects (see whatFsyncsProtect).
	evidence []fsyncEvidence
}

// TestPowerLoss runs real renewals (CLI child processes against the
// in-process CA) on a lossyfs mount and checks the disk after a power cut
// at every operation: for each possible disk (everything unsynced lost,
// everything kept, each unsynced operation alone, all but each, each
// prefix, and random subsets), materialised into a fresh directory, the
// same checks as the kill suite (see checkDisk).
func TestPowerLoss(t *testing.T) {
	t.Parallel()
	tallies := make([]powerTally, len(powerScenarios))
	concurrently(t, workers(t), powerScenarios, func(sc powerScenario) string { return sc.name },
		func(t *testing.T, i int, sc powerScenario) { tallies[i] = powerScenarioRun(t, sc) })
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %6s %6s %6s %6s %8s %s\n", "SCENARIO", "OPS", "FSYNCS", "CUTS", "DISKS", "DISTINCT", "PROBLEMS")
	var total powerTally
	for i, tl := range tallies {
		fmt.Fprintf(&b, "%-28s %6d %6d %6d %6d %8d %d\n", powerScenarios[i].name, tl.ops, tl.fsyncs, tl.cuts, tl.disks, tl.checked, len(tl.problems))
		total.ops += tl.ops
		total.fsyncs += tl.fsyncs
		total.cuts += tl.cuts
		total.disks += tl.disks
		total.checked += tl.checked
		total.problems = append(total.problems, tl.problems...)
		total.evidence = append(total.evidence, tl.evidence...)
	}
	fmt.Fprintf(&b, "%-28s %6d %6d %6d %6d %8d %d\n", "total", total.ops, total.fsyncs, total.cuts, total.disks, total.checked, len(total.problems))
	t.Logf("power cuts (full=%v, seed %d):\n%s", powerFull(), powerSeed(t), b.String())

	if len(total.evidence) == 0 {
		return
	}
	b.Reset()
	for i, tl := range tallies {
		for _, e := range tl.evidence {
			what := e.failure
			if what == "" {
				what = "NOTHING FAILS WITHOUT IT"
			}
			fmt.Fprintf(&b, "%-28s %-58s %s\n", powerScenarios[i].name, e.label, firstLines(what, 1))
		}
	}
	t.Logf("what each fsync protects (the first failing disk of a run without it):\n%s", b.String())
}

// powerScenarioRun records sc's run and checks its cuts.
func powerScenarioRun(t *testing.T, sc powerScenario) powerTally {
	pc := powerRecord(t, sc)
	tally := pc.run()
	if len(tally.problems) == 0 && (powerFull() || os.Getenv("RENEWKIT_POWERLOSS_FSYNCS") == "1") {
		tally.evidence = pc.whatFsyncsProtect()
	}
	return tally
}

// powerRecord records sc's run and returns the check of its cuts.
func powerRecord(t *testing.T, sc powerScenario) *powerCheck {
	domains := []string{"power.example.test"}
	cur := new(atomic.Pointer[lossyfs.FS])
	opts := caOptions()
	opts.Sequence = finalizeSequence(cur)
	ca := testacme.New(t, opts)
	s := newSetup(t, ca, false, certSpec{name: "www", domains: domains})
	s.top = sc.top
	fsys := mountLossy(t, s)
	cur.Store(fsys)
	args := sc.prepare(t, s)
	old := ""
	if snap, err := served.Check(s.lineage("www")); err == nil {
		old = snap.Serial
	}

	earlier := len(ca.Finalizations(domains...))
	fsys.Checkpoint()
	if r := s.run(nil, args...); r.code != 0 {
		t.Fatalf("the recorded run: %v", r)
	}
	snap, err := served.Check(s.lineage("www"))
	if err != nil {
		t.Fatalf("after the recorded run: %v", err)
	}
	rec := fsys.Recording()
	pc := &powerCheck{t: t, name: sc.name, s: s, rec: rec, ca: ca, cur: cur, domains: domains, old: old, new: snap.Serial, seen: map[string]string{}}
	pc.finals = finalizeSeqs(ca, domains, earlier)
	pc.begunBefore = sc.finalized
	// What the CA saw must agree with the scenario: a scenario with an
	// order finalized by an earlier, killed run sent one then; any other
	// finalizes during the recorded run, after its start.
	switch {
	case sc.finalized && earlier == 0:
		t.Fatalf("the CA received no finalize before the recorded run")
	case !sc.finalized && (pc.finalizeBegun(0) || !pc.finalizeBegun(rec.Len())):
		t.Fatalf("the CA received no finalize during the recorded run (cuts %v of 0..%d)", pc.finalizeCuts(), rec.Len())
	}
	return pc
}

// fsyncEvidence is what one fsync of a recorded run protects: the first
// disk, in a run without that fsync, that fails the checks ("" when none
// does: the fsync protects nothing in that scenario).
type fsyncEvidence struct {
	label   string // the fsync, its path normalised (see fsyncLabel)
	index   int    // its index in the recording; -1 for a group
	failure string
}

// isCut reports whether p is a cut point worth checking: the start, the
// end (right after the run exited), and after every operation on the disk
// under test (not after the program's own records: the disk is the same).
func isCut(rec *lossyfs.Recording, p int) bool {
	return p == 0 || p == rec.Len() || rec.Under(p-1, powerTops...)
}

// whatFsyncsProtect leaves out each fsync of the recording in turn (a run
// that did not call it: an fsync changes nothing the program sees) and
// looks for a disk that then fails the checks, from the cut right after
// the missing fsync on.
func (pc *powerCheck) whatFsyncsProtect() []fsyncEvidence {
	var out []fsyncEvidence
	seen := map[string]int{}
	for f := range pc.rec.Len() {
		o := pc.rec.Op(f)
		if o.Kind != lossyfs.OpFsync || !pc.rec.Under(f, powerTops...) {
			continue
		}
		label := fsyncLabel(o.Path)
		seen[label]++
		label = fmt.Sprintf("%s #%d", label, seen[label])
		v := *pc
		v.rec = pc.rec.Without(f)
		out = append(out, fsyncEvidence{label: label, index: f, failure: v.firstFailure(f + 1)})
	}
	// The fsyncs that protect nothing on their own may still protect
	// something together (two fsyncs of one directory, either of which
	// makes the same entries durable): leave them all out at once.
	var free []int
	var labels []string
	for _, e := range out {
		if e.failure == "" {
			free = append(free, e.index)
			labels = append(labels, e.label)
		}
	}
	if len(free) > 1 {
		v := *pc
		v.rec = pc.rec.Without(free...)
		out = append(out, fsyncEvidence{label: "together: " + strings.Join(labels, ", "), index: -1, failure: v.firstFailure(free[0])})
	}
	return out
}

// firstFailure returns the first disk, at a cut from p on, that fails the
// checks, described; "" when none does.
func (pc *powerCheck) firstFailure(from int) string {
	rng := rand.New(rand.NewPCG(powerSeed(pc.t), uint64(from)))
	for p := from; p <= pc.rec.Len(); p++ {
		if !isCut(pc.rec, p) {
			continue
		}
		for _, d := range pc.disks(p, rng) {
			key := pc.context(p) + " " + d.Digest
			msg, ok := pc.seen[key]
			if !ok {
				msg = strings.Join(pc.checkDisk(p, d), "; ")
				pc.seen[key] = msg
			}
			if msg != "" {
				return fmt.Sprintf("cut after %s, %s: %s", pc.lastOp(p), d.Kind, msg)
			}
		}
	}
	return ""
}

// tmpNames matches the random parts of temporary names.
var tmpNames = regexp.MustCompile(`(\.\d{6}\.tmp-[0-9a-z]+|\d{9,}|\d{6})`)

// fsyncLabel is an fsync's path with the random and numbered parts of
// names replaced by N.
func fsyncLabel(path string) string {
	return "fsync " + tmpNames.ReplaceAllStringFunc(path, func(m string) string {
		if strings.Contains(m, ".tmp-") {
			return ".N.tmp-*"
		}
		if len(m) == 6 {
			return "N"
		}
		return "*"
	})
}

// powerCheck checks the cuts of one recording.
type powerCheck struct {
	t    *testing.T
	name string // in reports
	s    *setup
	rec  *lossyfs.Recording
	ca   *testacme.Server
	// cur is the lossyfs whose position the CA records with a finalize
	// (see finalizeSequence).
	cur      *atomic.Pointer[lossyfs.FS]
	domains  []string
	old, new string // serials served before and after the recorded run
	// finals are the positions (lossyfs FS.Seq) at which the CA received a
	// finalize request for domains during the recorded run.
	finals []int64
	// begunBefore: the order the recorded run finishes had been finalized
	// before the recording began (by a killed run, by a run cut off by an
	// earlier power cut, by another fleet node).
	begunBefore bool
	// fewSubsets keeps the random subsets at the default's number in the
	// full mode too (a recording among many: the full mode checks more
	// recordings instead).
	fewSubsets bool
	// accountOutside: the account directory is not on the mount (a fleet
	// node's shared account): the reruns use it where it is.
	accountOutside bool
	// baseHooks are the serials whose deploy hooks ran before the
	// recording began, besides those in its hook log.
	baseHooks map[string]bool
	// seen maps a disk's digest and context to the result of its check.
	seen  map[string]string
	tally powerTally
}

// finalizeSeqs returns the positions at which the CA received a finalize
// request for domains, leaving out the first skip (those before a
// recording).
func finalizeSeqs(ca *testacme.Server, domains []string, skip int) []int64 {
	var out []int64
	for _, f := range ca.Finalizations(domains...)[skip:] {
		out = append(out, f.Seq)
	}
	return out
}

// finalizeCuts returns the cut points of the recording at which the CA
// received a finalize (negative: before the recording).
func (pc *powerCheck) finalizeCuts() []int {
	var out []int
	for _, seq := range pc.finals {
		out = append(out, pc.rec.CutOf(seq))
	}
	return out
}

func (pc *powerCheck) run() powerTally {
	t, rec := pc.t, pc.rec
	var cuts []int // cut points where the disk under test changed
	for p := 0; p <= rec.Len(); p++ {
		if isCut(rec, p) {
			cuts = append(cuts, p)
		}
		if p < rec.Len() && rec.Op(p).Kind == lossyfs.OpFsync {
			pc.tally.fsyncs++
		}
		if p < rec.Len() && rec.Under(p, powerTops...) {
			pc.tally.ops++
		}
	}
	pc.tally.cuts = len(cuts)
	// RENEWKIT_POWERLOSS_OPS=1 logs the recorded operations (to read a
	// failure's cut point against).
	if os.Getenv("RENEWKIT_POWERLOSS_OPS") == "1" {
		var b strings.Builder
		for i := range rec.Len() {
			fmt.Fprintf(&b, "%4d %s\n", i, rec.Op(i))
		}
		t.Logf("%s: the recorded operations (the CA received finalize at the cuts %v):\n%s", pc.name, pc.finalizeCuts(), b.String())
	}
	rng := rand.New(rand.NewPCG(powerSeed(t), uint64(len(pc.name))))
	for _, p := range cuts {
		for _, d := range pc.disks(p, rng) {
			pc.tally.disks++
			key := pc.context(p) + " " + d.Digest
			if _, ok := pc.seen[key]; ok {
				continue
			}
			pc.tally.checked++
			probs := pc.checkDisk(p, d)
			pc.seen[key] = strings.Join(probs, "; ")
			for _, msg := range probs {
				msg = fmt.Sprintf("%s: %v (after %s): %s", pc.name, d, pc.lastOp(p), msg)
				pc.tally.problems = append(pc.tally.problems, msg)
				t.Error(msg)
			}
			if len(pc.tally.problems) > 20 {
				t.Fatalf("more than 20 problems; stopping")
			}
			if len(probs) > 0 && powerFailFast() {
				t.Fatalf("stopping at the first disk that broke a promise (RENEWKIT_POWERLOSS_FAILFAST=1)")
			}
		}
	}
	t.Logf("%s: %d operations on the disk, %d fsyncs, %d cut points, %d disks, %d distinct checked, %d problems",
		pc.name, pc.tally.ops, pc.tally.fsyncs, pc.tally.cuts, pc.tally.disks, pc.tally.checked, len(pc.tally.problems))
	return pc.tally
}

func (pc *powerCheck) lastOp(p int) string {
	if p == 0 {
		return "nothing"
	}
	return pc.rec.Op(p - 1).String()
}

// finalizeBegun reports whether, at the cut p, a finalize may have reached
// the CA: the CA had received one when the file system had recorded p
// operations or fewer (a cut at p comes after every event that had
// happened by then). This is the CA's record, not the program's: a program
// that journals after finalize cannot hide it by moving its trace.
func (pc *powerCheck) finalizeBegun(p int) bool {
	if pc.begunBefore {
		return true
	}
	for _, seq := range pc.finals {
		if pc.rec.CutOf(seq) <= p {
			return true
		}
	}
	return false
}

// hooksRun returns the serials whose deploy hook had run by the cut p.
func (pc *powerCheck) hooksRun(p int) map[string]bool {
	log, _ := pc.rec.Volatile(p, powerHooks)
	m := maps.Clone(pc.baseHooks)
	if m == nil {
		m = map[string]bool{}
	}
	for _, l := range strings.Split(string(log), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			m[f[0]] = true
		}
	}
	return m
}

// context is what, besides the disk, a check at p depends on.
func (pc *powerCheck) context(p int) string {
	hooks := slices.Sorted(func(yield func(string) bool) {
		for k := range pc.hooksRun(p) {
			if !yield(k) {
				return
			}
		}
	})
	return fmt.Sprintf("finalize=%v hooks=%v end=%v", pc.finalizeBegun(p), hooks, p == pc.rec.Len())
}

// checkDisk materialises d and checks it as the kill suite checks a lineage
// after a kill:
//
//  1. the served files are one whole generation, the old or the new (or,
//     before the first durable install, nothing at all: no stable link
//     resolves);
//  2. a normal run on the disk exits 0 with no error record, leaves no
//     temporary file or pending.key, and serves one whole generation; a
//     third run finds it not due and does nothing;
//  3. when finalize may have reached the CA by the cut, that run installs
//     the certificate the recorded run got, without a second order (the
//     order journal must have been durable);
//  4. every generation that was current on the disk had its deploy hook
//     run: before the cut, or by the rerun; and one the rerun made current
//     had it run by the rerun (servers restarted with what the disk held);
//  5. durable on success: right after the recorded run exited 0, a cut
//     that loses everything unsynced leaves the new certificate served;
//  6. never a torn file: state.json and the account record, when present,
//     are whole (what WriteFile promises).
func (pc *powerCheck) checkDisk(p int, d lossyfs.Disk) (problems []string) {
	t := pc.t
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	dir, err := os.MkdirTemp(pc.s.dir, "disk-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, powerData)
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Materialize(data); err != nil {
		t.Fatal(err)
	}
	for _, sub := range powerTops {
		if err := os.MkdirAll(filepath.Join(data, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ds := *pc.s
	ds.dir, ds.config = dir, filepath.Join(dir, "renewkit.toml")
	ds.root = filepath.Join(data, powerRoot)
	if !pc.accountOutside {
		ds.account = filepath.Join(data, powerAcct)
	}
	ds.setHookLog(filepath.Join(dir, powerHooks))
	lineage := ds.lineage("www")

	// (1) What a server would load from the disk.
	current, msg := servedAfterCut(lineage, pc.old, pc.new)
	if msg != "" {
		problem("%s", msg)
	}
	// (6) Never a torn file: what WriteFile replaced is whole.
	for _, f := range []string{filepath.Join(powerRoot, "www", "state.json"), filepath.Join(powerAcct, "account.json")} {
		if b, ok := d.ReadFile(f); ok && !json.Valid(b) {
			problem("%s is torn (%d bytes, not JSON)", f, len(b))
		}
	}
	// (5) Durable on success: a cut right after the run exited 0 keeps
	// what it reported, even when every unsynced write is lost.
	if p == pc.rec.Len() && d.Kind == "durable" && current != pc.new {
		problem("the run exited 0, but a power cut right after it leaves serial %q served, not %s: its result was not durable", current, pc.new)
	}

	// (2) A normal run recovers.
	issued0 := pc.ca.Stats(pc.domains...).Issued
	r := ds.run(nil)
	if r.code != 0 {
		problem("rerun: exit %d: %s", r.code, firstLines(r.stderr, 6))
	}
	if errs := errorRecords(r.stderr); len(errs) > 0 {
		problem("rerun logged errors: %s", firstLines(strings.Join(errs, "\n"), 3))
	}
	snap, err := served.Check(lineage)
	if err != nil {
		problem("after the rerun the served files are not whole: %v", err)
		return problems
	}
	if left := served.Leftovers(lineage); len(left) > 0 {
		problem("after the rerun the lineage still holds %v", left)
	}
	if left := accountLeftovers(ds.account); len(left) > 0 {
		problem("after the rerun the account directory still holds %v", left)
	}
	issued := pc.ca.Stats(pc.domains...).Issued - issued0

	// (3) No wasted issuance once finalize may have reached the CA.
	if pc.finalizeBegun(p) {
		if issued != 0 {
			pk, ok := d.ReadFile(filepath.Join(powerRoot, "www", "pending.key"))
			problem("finalize had begun, but the rerun ordered again (%d issued; pending.key on the disk: %v, %d bytes): %s", issued, ok, len(pk), grepLines(r.stderr, "pending", "order", "journal"))
		}
		if snap.Serial != pc.new {
			problem("finalize had begun, but the rerun serves %s, not the issued %s", snap.Serial, pc.new)
		}
	}

	// Idempotent: a third run does nothing.
	reloads := ds.reloads()
	r3 := ds.run(nil)
	if r3.code != 0 || r3.outcome("www") != "not_due" {
		problem("a third run did not find the lineage up to date: exit %d, %s", r3.code, r3.outcome("www"))
	}
	if n := pc.ca.Stats(pc.domains...).Issued - issued0; n != issued {
		problem("a third run issued again")
	}

	// (4) Every generation current on the disk had its hook run.
	before := pc.hooksRun(p)
	after := ds.reloads()
	if current != "" && !before[current] && after[current] == 0 {
		problem("serial %s was current on the disk but its deploy hook never ran", current)
	}
	// A generation the rerun made current needs its hook run by the rerun:
	// after a power cut, servers started with what was current then.
	if snap.Serial != current && after[snap.Serial] == 0 {
		problem("the rerun made serial %s current but did not run its deploy hook", snap.Serial)
	}
	if sum(after) != sum(reloads) {
		problem("a third run ran deploy hooks again")
	}
	return problems
}

// grepLines returns the lines of s that contain one of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, " | ")
}

// servedAfterCut is check (1) of the power-loss suite: the lineage in dir
// serves one whole generation, old or new, or nothing at all when nothing
// was served before (old == ""). It returns the serial served ("" for
// nothing) and a description of the problem ("" for none).
func servedAfterCut(dir, old, new string) (serial, problem string) {
	switch snap, err := served.Check(dir); {
	case err == nil && (snap.Serial == old || snap.Serial == new):
		return snap.Serial, ""
	case err == nil:
		return "", fmt.Sprintf("serves serial %s, neither the old (%s) nor the new (%s)", snap.Serial, old, new)
	case old == "" && nothingServed(dir):
		return "", ""
	default:
		return "", fmt.Sprintf("the served files are not one whole generation: %v", err)
	}
}

// firstLines returns the first n lines of s.
func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, " | ")
}
