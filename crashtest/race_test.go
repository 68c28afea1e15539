package crashtest_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
)

// TestRacingProcesses starts 20 CLI processes at once on the same three
// due lineages: each lineage is issued exactly once, every other process
// reports it locked (or, arriving after the winner finished, not due) and
// exits 0, and the final state is consistent.
func TestRacingProcesses(t *testing.T) {
	t.Parallel()
	const procs = 20
	// Validation always succeeds, so that the winners (possibly three
	// different processes) need not share the CA's one HTTP-01 port.
	opts := caOptions()
	opts.AlwaysValid = true
	ca := testacme.New(t, opts)
	names := []string{"race-a", "race-b", "race-c"}
	specs := []certSpec{{name: "warm", domains: []string{"warm.example.test"}}}
	for _, n := range names {
		specs = append(specs, certSpec{name: n, domains: []string{n + ".example.test"}})
	}
	s := newSetup(t, ca, true, specs...)
	// The account exists before the race (its creation is serialized by
	// acmeissuer's own lock, which is not what this test measures).
	s.mustRun(0, "-cert", "warm")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	only := strings.Join(names, ",")
	cmds := make([]*startedCmd, procs)
	for i := range cmds {
		cmd, t0 := s.start(ctx, nil, "-cert", only)
		cmds[i] = &startedCmd{cmd: cmd, t0: t0}
	}
	runs := make([]run, procs)
	for i, c := range cmds {
		runs[i] = wait(c.cmd, c.t0)
	}

	outcomes := map[string]map[string]int{} // lineage → outcome → count
	var lockedCert, losers, winners []time.Duration
	for i, r := range runs {
		if r.code != 0 {
			t.Errorf("process %d: %v", i, r)
		}
		won := false
		for _, n := range names {
			rec := r.summaries()[n]
			o, _ := rec["outcome"].(string)
			if outcomes[n] == nil {
				outcomes[n] = map[string]int{}
			}
			outcomes[n][o]++
			switch o {
			case "renewed":
				won = true
			case "locked":
				if d, ok := rec["duration"].(float64); ok {
					lockedCert = append(lockedCert, time.Duration(d*float64(time.Second))) // JSON durations are seconds
				}
			case "not_due":
			default:
				t.Errorf("process %d, %s: outcome %q, want renewed, locked or not_due\n%v", i, n, o, r)
			}
		}
		if won {
			winners = append(winners, r.duration)
		} else {
			losers = append(losers, r.duration)
		}
	}

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "LINEAGE\tRENEWED\tLOCKED\tNOT DUE\tISSUED (CA)\tMAX CONCURRENT ORDERS\n")
	for _, n := range names {
		st := ca.Stats(n + ".example.test")
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", n, outcomes[n]["renewed"], outcomes[n]["locked"], outcomes[n]["not_due"], st.Issued, st.MaxConcurrentOrders)
		if outcomes[n]["renewed"] != 1 || st.Issued != 1 || st.Orders != 1 {
			t.Errorf("%s: %d processes renewed it, the CA got %d orders and issued %d; want exactly 1 of each", n, outcomes[n]["renewed"], st.Orders, st.Issued)
		}
		snap, err := served.Check(s.lineage(n))
		if err != nil {
			t.Errorf("%s after the race: %v", n, err)
			continue
		}
		if s.reloads()[snap.Serial] == 0 {
			t.Errorf("%s: the served serial %s was never reloaded", n, snap.Serial)
		}
	}
	tw.Flush()
	fmt.Fprintf(&b, "locked lineage decided in (per-certificate duration, %d samples): %s\n", len(lockedCert), percentiles(lockedCert))
	fmt.Fprintf(&b, "processes that renewed nothing, start to exit (%d): %s\n", len(losers), percentiles(losers))
	fmt.Fprintf(&b, "processes that renewed something, start to exit (%d): %s\n", len(winners), percentiles(winners))
	t.Logf("%d processes racing on %d lineages:\n%s", procs, len(names), b.String())

	// Settled: a normal run finds nothing to do.
	r := s.mustRun(0)
	for _, n := range names {
		if o := r.outcome(n); o != "not_due" {
			t.Errorf("%s: the run after the race says %q, want not_due", n, o)
		}
		if st := ca.Stats(n + ".example.test"); st.Issued != 1 {
			t.Errorf("%s: issued %d after the settling run", n, st.Issued)
		}
		if left := leftovers(s.lineage(n)); len(left) > 0 {
			t.Errorf("%s: left behind %v", n, left)
		}
	}
}

type startedCmd struct {
	cmd *exec.Cmd
	t0  time.Time
}

// percentiles formats p50 and max of ds.
func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	r := func(d time.Duration) time.Duration {
		if d < time.Millisecond {
			return d.Round(time.Microsecond)
		}
		return d.Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v, max %v", r(ds[len(ds)/2]), r(ds[len(ds)-1]))
}
