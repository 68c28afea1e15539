package crashtest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
)

// randomKills is the number of random kills: RENEWKIT_CRASH_N, else 2000
// with RENEWKIT_CRASH_LONG=1, else 10 with -short, else 50.
func randomKills(t *testing.T) int {
	if v := os.Getenv("RENEWKIT_CRASH_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("RENEWKIT_CRASH_N=%q: want a positive number", v)
		}
		return n
	}
	if os.Getenv("RENEWKIT_CRASH_LONG") == "1" {
		return 2000
	}
	if testing.Short() {
		return 10
	}
	return 50
}

// readerPause is what each reader of TestRandomKills waits between reads,
// so that the readers leave CPU to the renewals and the rest of the suite.
const readerPause = 100 * time.Microsecond

// TestRandomKills runs N forced renewals of the CLI, each SIGKILLed after a
// random delay within a renewal's typical duration, while readers in this
// process read the served files continuously as nginx and HAProxy do. A
// read of combined.pem must never be inconsistent, nothing may ever be
// unreadable, and the two-file straddles are counted. After the loop one
// normal run must leave the lineage whole, with every generation that was
// ever served reloaded by the deploy hook and every certificate the CA
// issued installed.
func TestRandomKills(t *testing.T) {
	t.Parallel()
	n := randomKills(t)
	domains := []string{"roulette.example.test"}
	ca := testacme.New(t, caOptions())
	s := newSetup(t, ca, false, certSpec{name: "www", domains: domains})
	dir := s.lineage("www")
	s.mustRun(0)

	everServed := map[string]bool{}
	note := func(when string) {
		snap, err := served.Check(dir)
		if err != nil {
			t.Fatalf("%s: the served files are not one whole generation: %v", when, err)
		}
		everServed[snap.Serial] = true
	}
	note("before the loop")

	ctx, stop := context.WithCancel(context.Background())
	tallies := make([]served.Tally, 2)
	var wg sync.WaitGroup
	for i, kind := range []served.Kind{served.Pair, served.Combined} {
		wg.Go(func() { tallies[i] = served.Watch(ctx, dir, kind, readerPause) })
	}

	// A renewal's typical duration, readers running: the median of the last
	// five unkilled forced runs, five at the start and one every 25 kills
	// (so that the delays follow the machine's load).
	var ds []time.Duration
	calibrate := func() {
		r := s.run(nil, "-force", "all")
		if r.code != 0 {
			stop()
			wg.Wait()
			t.Fatalf("forced run: %v", r)
		}
		ds = append(ds, r.duration)
		note("after a measuring run")
	}
	for range 5 {
		calibrate()
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	start := time.Now()
	killed, finished, recoveries := 0, 0, 0
	var typicals []time.Duration
	for i := range n {
		if i > 0 && i%25 == 0 {
			calibrate()
		}
		typical := median(ds[max(0, len(ds)-5):])
		typicals = append(typicals, typical)
		cmd, t0 := s.start(context.Background(), nil, "-force", "all")
		delay := time.Duration(rng.Int64N(int64(typical)))
		timer := time.AfterFunc(delay, func() { _ = cmd.Process.Kill() })
		r := wait(cmd, t0)
		timer.Stop()
		switch {
		case r.killed:
			killed++
		case r.code == 0:
			finished++
		default:
			stop()
			wg.Wait()
			t.Fatalf("run %d (not killed) failed: %v", i, r)
		}
		if isRecovery(r.stderr) {
			recoveries++
		}
		note(fmt.Sprintf("after run %d (killed after %v)", i, delay))
	}
	loop := time.Since(start)
	stop()
	wg.Wait()

	// One normal run catches up.
	r := s.mustRun(0)
	if isRecovery(r.stderr) {
		recoveries++
	}
	note("after the final run")
	for _, tl := range tallies {
		for serial := range tl.Serials {
			everServed[serial] = true
		}
	}
	if left := leftovers(dir); len(left) > 0 {
		t.Errorf("after the final run the lineage still holds %v", left)
	}
	reloads := s.reloads()
	notReloaded := 0
	for serial := range everServed {
		if reloads[serial] == 0 {
			notReloaded++
			t.Errorf("serial %s was served but its deploy hook never ran", serial)
		}
	}
	st := ca.Stats(domains...)
	// Every certificate the CA issued was installed and reloaded: none was
	// wasted, none was ordered twice.
	if st.Issued != len(reloads) {
		t.Errorf("the CA issued %d certificates, the deploy hook reloaded %d distinct ones", st.Issued, len(reloads))
	}

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	slices.Sort(typicals)
	fmt.Fprintf(tw, "forced renewals\t%d, kill delay uniform in [0, typical duration); typical %v to %v (median of 5 unkilled runs, re-measured every 25 kills: %d runs)\n",
		n, typicals[0].Round(time.Millisecond), typicals[len(typicals)-1].Round(time.Millisecond), len(ds))
	fmt.Fprintf(tw, "killed by SIGKILL\t%d\n", killed)
	fmt.Fprintf(tw, "finished before the kill\t%d\n", finished)
	fmt.Fprintf(tw, "runs that recovered a killed run's work\t%d\n", recoveries)
	fmt.Fprintf(tw, "certificates issued (CA)\t%d, orders %d\n", st.Issued, st.Orders)
	fmt.Fprintf(tw, "generations served / reloaded by the hook\t%d / %d (hook runs %d), not reloaded %d\n", len(everServed), len(reloads), sum(reloads), notReloaded)
	for _, tl := range tallies {
		fmt.Fprintf(tw, "reads %s\t%d, inconsistent %d (mismatched pair %d, unreadable %d)\n", tl.Kind, tl.Reads, tl.Inconsistent(), tl.Mismatches, tl.Unreadable)
	}
	fmt.Fprintf(tw, "loop duration\t%v\n", loop.Round(time.Millisecond))
	tw.Flush()
	t.Logf("random kills:\n%s", b.String())

	for _, tl := range tallies {
		if tl.Unreadable > 0 {
			t.Errorf("%s: %d reads found a file missing or partial; first: %v", tl.Kind, tl.Unreadable, tl.FirstError)
		}
		if tl.Kind == served.Combined && tl.Mismatches > 0 {
			t.Errorf("%s: %d reads found a key that is not the certificate's; first: %v", tl.Kind, tl.Mismatches, tl.FirstError)
		}
		if tl.Kind == served.Pair && tl.Mismatches > 0 {
			t.Logf("%s: %d straddles of a swap (expected to be rare, and possible only for two-file readers); first: %v", tl.Kind, tl.Mismatches, tl.FirstError)
		}
	}
}

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// isRecovery reports whether a run's log shows it finishing a killed run's
// work: rolling a generation forward or resuming a finalized order.
func isRecovery(log string) bool {
	return strings.Contains(log, "rolling forward") || strings.Contains(log, "resuming an order")
}
