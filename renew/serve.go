package renew

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"
)

// Bounds of the wait between two rounds of Serve.
const (
	// serveMinWait keeps a lineage that keeps failing quickly (a broken
	// disk, a config error) from spinning.
	serveMinWait = time.Second
	// serveMaxWait makes Serve look again at least this often, to fetch
	// ARI windows and notice damage to installed files.
	serveMaxWait = 12 * time.Hour
	// serveLockedWait is how soon a lineage another process holds is looked
	// at again.
	serveLockedWait = time.Minute
	// serveRewatchWait is how soon a fleet watch that ended is started
	// again (fleet mode); the timers go on meanwhile.
	serveRewatchWait = 10 * time.Second
)

// Serve is the long-running mode for services that embed a Renewer: it runs
// certs, sleeps until the earliest NextCheck of the results (plus up to 10 %
// jitter, at most five minutes, so a fleet does not renew in lockstep), runs
// them again, and so on. Force applies to the first round only. Serve
// returns ctx's error when ctx ends, after the round in progress has stopped;
// it leaves no goroutine behind. Each round's results reach the Logger and
// the Observer.
//
// Serve is ServeUpdates with no updates.
func (r *Renewer) Serve(ctx context.Context, certs ...Certificate) error {
	return r.ServeUpdates(ctx, nil, certs...)
}

// ServeUpdates is Serve whose certificate list can change while it runs,
// for a program that reloads its configuration:
//
//   - a list received from updates replaces certs. While Serve sleeps it
//     starts a round with the new list at once; during a round it is not
//     received (a send blocks) until the round has ended: a round is never
//     cut short by an update. Force in the new list applies to its first
//     round. A lineage dropped from the list is no longer renewed; its files
//     stay where they are.
//   - closing updates is a graceful stop: ServeUpdates returns nil when the
//     round in progress, if any, has finished, without interrupting it.
//     A program that must change more than the list (the Issuer, the Root)
//     closes updates, waits for ServeUpdates to return and starts another
//     Renewer.
//
// A nil updates never delivers. Ending ctx stops a round in progress before
// its next irreversible step (see Run and HookGrace) and makes ServeUpdates
// return ctx's error.
//
// In fleet mode (Renewer.Fleet) it also watches the fleet (Fleet.Watch):
// when a lineage's fleet record changes (another node published a
// generation, say), that lineage runs at once, between rounds, so that
// every node installs a new generation as soon as it is published rather
// than at its next timer. A watch that ends is logged and started again
// after a few seconds; the timers go on meanwhile.
func (r *Renewer) ServeUpdates(ctx context.Context, updates <-chan []Certificate, certs ...Certificate) error {
	return r.serve(ctx, updates, newRealTimer, certs...)
}

// serveTimer starts the wait between two rounds of Serve: c delivers when
// d has passed; stop releases the timer when Serve stops waiting early.
// Tests pass a fake one to drive the rounds without real time passing.
type serveTimer func(d time.Duration) (c <-chan time.Time, stop func() bool)

// newRealTimer is the serveTimer of time.NewTimer.
func newRealTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// serve is ServeUpdates waiting on timers from newTimer.
func (r *Renewer) serve(ctx context.Context, updates <-chan []Certificate, newTimer serveTimer, certs ...Certificate) error {
	if err := r.check(true); err != nil {
		return err
	}
	certs = slices.Clone(certs) // Force is cleared after the first round
	var (
		watch       <-chan string    // the fleet's changes; nil outside fleet mode
		rewatch     <-chan time.Time // fires when a failed watch is started again
		stopRewatch func() bool
	)
	wctx, cancel := context.WithCancel(ctx) // ends the watch when Serve returns
	defer cancel()
	if r.Fleet != nil {
		watch = r.Fleet.Watch(wctx)
		defer func() {
			if stopRewatch != nil {
				stopRewatch()
			}
		}()
	}
	results := r.Run(ctx, certs...)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range certs {
			certs[i].Force = false
		}
		wait := r.nextWait(results)
		r.logger().Debug("next renewal check", "in", wait)
		fired, stop := newTimer(wait)
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-fired:
			results = r.Run(ctx, certs...)
		case next, ok := <-updates:
			stop()
			if !ok {
				return nil
			}
			certs = slices.Clone(next)
			r.logger().Debug("certificate list updated", "certificates", len(certs))
			results = r.Run(ctx, certs...)
		case name, ok := <-watch:
			stop()
			// The changes already reported run together: one fleet read.
			changed := make(map[string]bool)
			for ok {
				changed[name] = true
				select {
				case name, ok = <-watch:
					continue
				default:
				}
				break
			}
			r.runChanged(ctx, certs, results, changed)
			if !ok {
				r.logger().Warn("fleet watch ended; watching again soon, the timers go on meanwhile", "in", serveRewatchWait)
				watch = nil
				rewatch, stopRewatch = newTimer(serveRewatchWait)
			}
		case <-rewatch:
			stop()
			rewatch, stopRewatch = nil, nil
			watch = r.Fleet.Watch(wctx)
		}
	}
}

// runChanged runs the certificates whose lineage names are in changed
// (reported by the fleet's watch), putting their Results in results.
func (r *Renewer) runChanged(ctx context.Context, certs []Certificate, results []Result, changed map[string]bool) {
	var idx []int
	var run []Certificate
	for i, c := range certs {
		if changed[c.Name] {
			idx = append(idx, i)
			run = append(run, c)
		}
	}
	if len(run) == 0 {
		return
	}
	r.logger().Debug("fleet records changed", "certificates", len(run))
	for j, res := range r.Run(ctx, run...) {
		results[idx[j]] = res
	}
}

// nextWait is how long Serve sleeps after a round with these results.
func (r *Renewer) nextWait(results []Result) time.Duration {
	now := r.now()
	wait := serveMaxWait
	for _, res := range results {
		var w time.Duration
		switch {
		case res.Outcome == Locked:
			w = serveLockedWait
		case res.NextCheck.IsZero():
			w = serveLockedWait
		default:
			w = res.NextCheck.Sub(now)
		}
		if res.HookErr != nil && w > serveLockedWait {
			w = serveLockedWait // retry pending hooks soon
		}
		wait = min(wait, w)
	}
	wait = max(wait, serveMinWait)
	// Jitter spreads a fleet's renewals; it is not needed (and would eat
	// into a short certificate's lifetime) for waits under a minute.
	jitter := min(wait/10, 5*time.Minute)
	if wait >= time.Minute && jitter > 0 {
		r.withRand(func(rnd *rand.Rand) { wait += time.Duration(rnd.Int64N(int64(jitter))) })
	}
	return wait
}

// hookContext returns the context deploy hooks run with. With no HookGrace
// it is ctx. Otherwise it ends HookGrace after ctx ends (or when the
// returned cancel is called), so that the hooks of a generation already
// made current can finish their reload when the program is asked to stop.
func (r *Renewer) hookContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.HookGrace <= 0 {
		return ctx, func() {}
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	grace := r.HookGrace
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-hctx.Done():
		}
	})
	return hctx, func() {
		stop()
		cancel()
	}
}
