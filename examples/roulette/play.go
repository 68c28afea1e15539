package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// options are the command line.
type options struct {
	n       int
	root    string
	keep    bool
	seed    uint64
	verbose bool
	// measure is the number of renewals timed to find the typical duration
	// (0: 5); pause is what each reader waits between two reads.
	measure int
	pause   time.Duration
}

// summary is what a game found.
type summary struct {
	dir      string
	typical  time.Duration
	duration time.Duration
	// renewals started in the loop; killed ones and those that finished
	// before their kill.
	renewals, killed, finished int
	// failed counts loop renewals that finished with an error.
	failed int
	// recoveries counts renewals that finished a killed one's work.
	recoveries int
	// broken counts instants after a kill when the served files were not one
	// whole generation.
	broken    int
	brokenErr error
	issued    int
	orders    int
	// served are the serials seen served (after each kill and by the
	// readers); reloads the serials the hook reloaded, with run counts.
	served  map[string]bool
	reloads map[string]int
	// notReloaded counts served serials the hook never reloaded; badReloads
	// hook runs that found the files inconsistent.
	notReloaded, badReloads int
	tallies                 []served.Tally
	leftovers               []string
	finalErr                error
}

// held reports whether the promise held.
func (s *summary) held() bool {
	for _, t := range s.tallies {
		if t.Unreadable > 0 || t.Kind == served.Combined && t.Mismatches > 0 {
			return false
		}
	}
	return s.broken == 0 && s.notReloaded == 0 && s.badReloads == 0 && s.issued == len(s.reloads) &&
		len(s.leftovers) == 0 && s.finalErr == nil
}

func (s *summary) print(w io.Writer) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("renewals killed with SIGKILL", "%d of %d (the others finished first)", s.killed, s.renewals)
	row("kill delay", "uniform in [0, a renewal's typical duration), %v at the end (re-measured every 25 kills)", s.typical.Round(time.Millisecond))
	row("renewals that finished a killed one's work", "%d (rolled a written generation forward or installed an issued certificate)", s.recoveries)
	row("served files not whole after a kill", "%d", s.broken)
	for _, t := range s.tallies {
		extra := ""
		if t.Kind == served.Pair && t.Mismatches > 0 {
			extra = fmt.Sprintf(" (%d straddled a swap: certificate of one generation, key of the next)", t.Mismatches)
		}
		row("reads, "+t.Kind.String(), "%d, inconsistent %d%s", t.Reads, t.Inconsistent(), extra)
	}
	row("certificates issued by the CA", "%d (orders %d)", s.issued, s.orders)
	row("generations served", "%d; reloaded by the deploy hook: %d, in %d hook runs", len(s.served), len(s.reloads), sumRuns(s.reloads))
	left := "nothing"
	if len(s.leftovers) > 0 {
		left = strings.Join(s.leftovers, ", ")
	}
	row("left behind after the final run", "%s", left)
	row("time", "%v", s.duration.Round(time.Millisecond))
	tw.Flush()
	fmt.Fprintln(w)
	var why []string
	for _, t := range s.tallies {
		if t.Unreadable > 0 {
			why = append(why, fmt.Sprintf("%s: %d reads found a file missing or partial (first: %v)", t.Kind, t.Unreadable, t.FirstError))
		}
		if t.Kind == served.Combined && t.Mismatches > 0 {
			why = append(why, fmt.Sprintf("%s: %d reads found a key not matching the certificate (first: %v)", t.Kind, t.Mismatches, t.FirstError))
		}
	}
	if s.broken > 0 {
		why = append(why, fmt.Sprintf("%d kills left the served files broken (first: %v)", s.broken, s.brokenErr))
	}
	if s.notReloaded > 0 {
		why = append(why, fmt.Sprintf("%d served generations were never reloaded by the deploy hook", s.notReloaded))
	}
	if s.badReloads > 0 {
		why = append(why, fmt.Sprintf("%d deploy-hook runs found the served files inconsistent", s.badReloads))
	}
	if s.issued != len(s.reloads) {
		why = append(why, fmt.Sprintf("the CA issued %d certificates but %d were installed and reloaded", s.issued, len(s.reloads)))
	}
	if len(s.leftovers) > 0 {
		why = append(why, "the final run left temporary files behind")
	}
	if s.finalErr != nil {
		why = append(why, fmt.Sprintf("the final run: %v", s.finalErr))
	}
	if len(why) == 0 {
		fmt.Fprintln(w, "The promise held: combined.pem was never inconsistent, no file was ever missing or half")
		fmt.Fprintln(w, "written, every generation served was reloaded, and no certificate the CA issued was wasted.")
		return
	}
	fmt.Fprintln(w, "The promise did NOT hold:")
	for _, y := range why {
		fmt.Fprintf(w, "  - %s\n", y)
	}
}

func sumRuns(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// spin is one renewal child.
type spin struct {
	killed   bool
	code     int
	result   childResult
	stderr   string
	duration time.Duration
}

// game is one play: the CA, the directory and the child's configuration.
type game struct {
	ca  *acmetest.CA
	cfg childConfig
	exe string
}

// spin runs a renewal child and SIGKILLs it after killAfter (never when
// killAfter is negative).
func (g *game) spin(ctx context.Context, force bool, killAfter time.Duration) (spin, error) {
	cfg := g.cfg
	cfg.Force = force
	arg, err := json.Marshal(cfg)
	if err != nil {
		return spin{}, err
	}
	cmd := exec.CommandContext(ctx, g.exe, childFlag, string(arg))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return spin{}, fmt.Errorf("start a renewal: %w", err)
	}
	if killAfter >= 0 {
		pid := cmd.Process.Pid
		timer := time.AfterFunc(killAfter, func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		defer timer.Stop()
	}
	werr := cmd.Wait()
	sp := spin{duration: time.Since(t0), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		sp.killed = true
		return sp, nil
	}
	if ctx.Err() != nil {
		return sp, ctx.Err()
	}
	if werr != nil && sp.code < 0 {
		return sp, werr
	}
	_ = json.Unmarshal(stdout.Bytes(), &sp.result)
	return sp, nil
}

func (s spin) recovered() bool {
	return strings.Contains(s.stderr, "rolling forward") || strings.Contains(s.stderr, "resuming an order")
}

func (s spin) err() error {
	if s.code == 0 {
		return nil
	}
	msg := s.result.Error
	if msg == "" {
		msg = strings.TrimSpace(s.stderr)
	}
	return fmt.Errorf("renewal exited %d (%s): %s", s.code, s.result.Outcome, msg)
}

// play runs the game and returns its summary. An error means the game
// could not be played (not that the promise failed).
func play(ctx context.Context, o options, out io.Writer) (*summary, error) {
	start := time.Now()
	dir := o.root
	if dir == "" {
		d, err := os.MkdirTemp("", "renewkit-roulette-")
		if err != nil {
			return nil, err
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to run its renewals: %w", err)
	}
	ca, err := acmetest.Start(acmetest.Options{Profiles: map[string]time.Duration{"shortlived": 0}})
	if err != nil {
		return nil, fmt.Errorf("start the CA: %w", err)
	}
	defer ca.Close()
	// The children get the CA's trust as files, as a configuration would.
	caFile, rootsFile := filepath.Join(dir, "ca-tls.pem"), filepath.Join(dir, "ca-roots.pem")
	if err := os.WriteFile(caFile, ca.TLSRootsPEM(), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(rootsFile, ca.ChainRootsPEM(), 0o644); err != nil {
		return nil, err
	}
	g := &game{ca: ca, exe: exe, cfg: childConfig{
		Directory:  ca.DirectoryURL(),
		CAFile:     caFile,
		RootsFile:  rootsFile,
		HTTP01:     ca.HTTP01Addr(),
		Root:       filepath.Join(dir, "root"),
		AccountDir: filepath.Join(dir, "account"),
		Name:       "www",
		Domains:    []string{"www.roulette.test"},
		HookLog:    filepath.Join(dir, "reloads.log"),
	}}
	lineage := filepath.Join(g.cfg.Root, g.cfg.Name)
	sum := &summary{dir: dir, served: map[string]bool{}}
	fmt.Fprintf(out, "renewkit roulette: %d renewals, each SIGKILLed at a random instant\n", o.n)
	fmt.Fprintf(out, "  CA (Pebble, in this process):  %s\n  lineage:                       %s\n", ca.DirectoryURL(), lineage)

	noteServed := func(when string) {
		snap, err := served.Check(lineage)
		if err != nil {
			sum.broken++
			if sum.brokenErr == nil {
				sum.brokenErr = fmt.Errorf("%s: %w", when, err)
			}
			return
		}
		sum.served[snap.Serial] = true
	}

	// The first certificate.
	sp, err := g.spin(ctx, false, -1)
	if err != nil {
		return nil, err
	}
	if err := sp.err(); err != nil {
		return nil, fmt.Errorf("the first issuance: %w", err)
	}
	noteServed("after the first issuance")

	// The readers, for the whole game.
	rctx, stopReaders := context.WithCancel(ctx)
	kinds := []served.Kind{served.Pair, served.Combined}
	sum.tallies = make([]served.Tally, len(kinds))
	var wg sync.WaitGroup
	for i, k := range kinds {
		wg.Go(func() { sum.tallies[i] = served.Watch(rctx, lineage, k, o.pause) })
	}
	defer func() { stopReaders(); wg.Wait() }()

	// A renewal's typical duration, readers running: the median of the last
	// five renewals left to finish, five now and one every 25 kills, so that
	// the kill delays follow the machine's load.
	var ds []time.Duration
	calibrate := func() error {
		sp, err := g.spin(ctx, true, -1)
		if err != nil {
			return err
		}
		if err := sp.err(); err != nil {
			return fmt.Errorf("a renewal: %w", err)
		}
		ds = append(ds, sp.duration)
		noteServed("after a measuring renewal")
		return nil
	}
	for range cmp.Or(o.measure, 5) {
		if err := calibrate(); err != nil {
			return nil, err
		}
	}
	typical := func() time.Duration {
		last := slices.Clone(ds[max(0, len(ds)-5):])
		slices.Sort(last)
		return last[len(last)/2]
	}
	sum.typical = typical()
	fmt.Fprintf(out, "  typical renewal:               %v (a process start, an order, HTTP-01, install, hook)\n\n", sum.typical.Round(time.Millisecond))

	seed := o.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	for i := range o.n {
		if i > 0 && i%25 == 0 {
			if err := calibrate(); err != nil {
				return nil, err
			}
			sum.typical = typical()
		}
		delay := time.Duration(rng.Int64N(int64(sum.typical)))
		sp, err := g.spin(ctx, true, delay)
		if err != nil {
			return nil, err
		}
		sum.renewals++
		switch {
		case sp.killed:
			sum.killed++
		case sp.code == 0:
			sum.finished++
		default:
			sum.failed++
			return nil, fmt.Errorf("renewal %d was not killed and failed: %w", i+1, sp.err())
		}
		if sp.recovered() {
			sum.recoveries++
		}
		noteServed(fmt.Sprintf("after renewal %d (killed after %v)", i+1, delay))
		switch {
		case o.verbose:
			state := "finished"
			if sp.killed {
				state = "killed"
			}
			fmt.Fprintf(out, "  renewal %4d: kill at %-10v %s after %v\n", i+1, delay.Round(time.Microsecond), state, sp.duration.Round(time.Microsecond))
		case (i+1)%max(o.n/10, 1) == 0:
			fmt.Fprintf(out, "  %d/%d renewals killed so far (%d finished first)\n", sum.killed, i+1, sum.finished)
		}
	}
	stopReaders()
	wg.Wait()
	for _, t := range sum.tallies {
		for serial := range t.Serials {
			sum.served[serial] = true
		}
	}

	// One renewal to the end: it must leave everything in order.
	sp, err = g.spin(ctx, false, -1)
	if err != nil {
		return nil, err
	}
	if sp.recovered() {
		sum.recoveries++
	}
	sum.finalErr = sp.err()
	noteServed("after the final run")
	sum.leftovers = served.Leftovers(lineage)
	rs, err := served.ReadReloads(g.cfg.HookLog)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if strings.HasPrefix(r.Verdict, "bad") {
			sum.badReloads++
		}
	}
	sum.reloads = served.ReloadedSerials(rs)
	for serial := range sum.served {
		if sum.reloads[serial] == 0 {
			sum.notReloaded++
		}
	}
	st := ca.Stats(g.cfg.Domains...)
	sum.issued, sum.orders = st.Issued, st.Orders
	sum.duration = time.Since(start)
	return sum, nil
}
