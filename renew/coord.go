package renew

import (
	"context"
	"crypto"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/crashpoint"
)

// coordinator is what differs between a single-node run and a fleet run
// (fleet mode, Renewer.Fleet set): where a newer generation comes from, the
// cross-run gate, the lock beyond flock, the order journal, publishing and
// recording a failure. The steps (listed on run) call it at the points
// named below; everything else (recovery, the install of a generation, the
// hooks, the state) is the same code in both modes. localRun is the
// single-node coordinator, fleetRun (fleetrun.go) the fleet's.
//
// A coordinator belongs to one lineage's run and is used by one goroutine.
type coordinator interface {
	// settled completes step 1: whether the fast path's NotDue res stands,
	// and res with what it knows (by value: the fast path allocates
	// nothing for it).
	settled(res Result) (Result, bool)
	// sharedARI is a renewal window another node fetched and shared, nil
	// if none (steps 1 and 6).
	sharedARI() *FleetARI
	// shareARI shares a window this run fetched (step 6).
	shareARI(ctx context.Context, l *lineage, a *ariState)
	// vouches reports whether a generation holding the certificate with
	// serial is vouched for by the coordinator, and its fleet number (step
	// 4's roll-forward).
	vouches(serial string) (fleetGen uint64, ok bool)
	// sync is step 5: a newer generation from elsewhere. It reports
	// whether it installed one; a non-nil ending ends the run.
	sync(ctx context.Context, l *lineage) (bool, *ending)
	// forceSatisfied reports whether this run already installed a
	// generation that a forced renewal (Certificate.Force) takes as its own
	// (step 6).
	forceSatisfied() bool
	// gate is step 7 once step 6 decided (due): it ends the run (not due,
	// backing off, a failed preflight, the lock beyond flock held
	// elsewhere, an order finished, an adoption) or returns nil for this
	// run to order. It runs the preflight before any order.
	gate(ctx context.Context, l *lineage, due, installed bool) *ending
	// journal is step 8's order journal, called by the Issuer before
	// finalize; on success l.order is the journaled order.
	journal(ctx context.Context, l *lineage, rec InFlight, key crypto.Signer, keyPEM []byte) error
	// dropOrder forgets an order this coordinator journaled.
	dropOrder(ctx context.Context, l *lineage)
	// publish is step 10 for a certificate the CA issued to this lineage:
	// it returns the fleet's number of it (0 outside fleet mode) or how the
	// run ended.
	publish(ctx context.Context, l *lineage, v *verified, key crypto.Signer) (uint64, *ending)
	// installFailed is how a failure to write a generation (step 11)
	// ends the run.
	installFailed(ctx context.Context, l *lineage, err error, fleetGen uint64) ending
	// counting returns the failure count a failed attempt continues from
	// (st.Failures) and whether the failure is recorded by the
	// coordinator too (recordFailure).
	counting(st *state) (int, bool)
	// recordFailure records the failed attempt st now describes (step 8's
	// or 9's failure, counted).
	recordFailure(ctx context.Context, l *lineage)
	// finish completes res with what the coordinator knows (step 16).
	finish(res *Result, st *state)
	// release finishes what the coordinator left for the end of the run
	// and lets go of what it holds, before the lineage lock is released
	// (step 16).
	release(ctx context.Context, l *lineage)
}

// localRun is the single-node coordinator: no newer generation comes from
// elsewhere, the gate is state.json's not-before, the order journal is
// pending.key, nothing is published.
type localRun struct{}

var _ coordinator = localRun{}

func (localRun) settled(res Result) (Result, bool)              { return res, true }
func (localRun) sharedARI() *FleetARI                           { return nil }
func (localRun) shareARI(context.Context, *lineage, *ariState)  {}
func (localRun) vouches(string) (uint64, bool)                  { return 0, false }
func (localRun) sync(context.Context, *lineage) (bool, *ending) { return false, nil }
func (localRun) forceSatisfied() bool                           { return false }
func (localRun) finish(*Result, *state)                         {}
func (localRun) release(context.Context, *lineage)              {}

// gate is step 7: the persisted not-before of earlier failures (unless
// they happened under another configuration), then step 8's preflight.
func (localRun) gate(ctx context.Context, l *lineage, due, installed bool) *ending {
	if !due {
		if installed {
			return &ending{outcome: Recovered}
		}
		return &ending{outcome: NotDue}
	}
	if !l.c.Force && l.now.Before(l.st.RetryNotBefore) {
		if h := l.c.configHash(); l.st.FailedConfig == "" || l.st.FailedConfig == h {
			e := l.backOff()
			return &e
		}
		l.log.Info("configuration changed since the last failure; not backing off", "retry_not_before", l.st.RetryNotBefore)
	}
	if err := ctx.Err(); err != nil {
		e := l.interrupted(err)
		return &e
	}
	return l.preflight(ctx)
}

// journal saves the key and the order in one atomic write (pending.key):
// before it the CA cannot have issued anything, after it the next run can
// always finish the order.
func (c localRun) journal(ctx context.Context, l *lineage, rec InFlight, key crypto.Signer, keyPEM []byte) error {
	crashpoint.Hit("renew", "run:8:journal")
	data, err := encodePending(keyPEM, rec)
	if err == nil {
		err = l.store.SavePendingKey(data)
	}
	if err != nil {
		return backoff.Permanent(fmt.Errorf("journal order %s: %w", rec.OrderURL, err))
	}
	rec.Name = l.c.Name
	l.order = &pendingOrder{rec: rec, key: key, in: c}
	crashpoint.Hit("renew", "run:8:journaled")
	return nil
}

// dropOrder removes pending.key.
func (localRun) dropOrder(ctx context.Context, l *lineage) {
	if err := l.store.RemovePendingKey(); err != nil {
		l.log.Warn("could not remove the order journal", "error", err)
	}
}

func (localRun) publish(context.Context, *lineage, *verified, crypto.Signer) (uint64, *ending) {
	return 0, nil
}

// installFailed counts a failure to write the generation like a failed
// attempt: the order journal is kept, so the next run installs this
// certificate instead of ordering another.
func (localRun) installFailed(ctx context.Context, l *lineage, err error, _ uint64) ending {
	return l.failAttempt(ctx, fmt.Errorf("install: %w", err))
}

func (localRun) counting(st *state) (int, bool) { return st.Failures, false }

func (localRun) recordFailure(context.Context, *lineage) {}

// sharedARIFresh reports whether w (nil: none) is a shared renewal window
// for the certificate with serial that may not be fetched again yet. A
// next fetch further away than twice interval (the most a node sets is one
// interval; twice allows for clock skew and nodes configured with
// different intervals) is not believed: a record that says "never fetch
// again" would otherwise stop every node from looking, so this node
// fetches and shares a sane window instead.
func sharedARIFresh(w *FleetARI, serial string, now time.Time, interval time.Duration) bool {
	return w != nil && w.Serial != "" && w.Serial == serial && now.Before(w.NextFetch) &&
		w.NextFetch.Sub(now) <= 2*interval
}
