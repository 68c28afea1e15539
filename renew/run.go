package renew

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/internal/crashpoint"
	"github.com/renewkit/renewkit/internal/textclip"
	"github.com/renewkit/renewkit/lockfile"
)

// lineage is one certificate's run in progress, under its lock.
type lineage struct {
	r     *Renewer
	c     Certificate
	dir   string
	store *atomicfs.Store
	st    *state
	log   *slog.Logger
	now   time.Time
	// order is the order journaled in pending.key, if any.
	order *pendingOrder
	// saved is st as state.json last held it in this run (read or
	// written), nil when the file must be rewritten whatever st holds
	// (corrupt, or with a loose mode). st is saved when it differs.
	saved []byte
	// Tallies for the Result: ACME attempts made, certificates issued to
	// this run (0 or 1), and the hooks' failure.
	attempts, issued int
	hookErr          error
	// co is the run's coordinator: localRun, or fleetRun in fleet mode.
	co coordinator
	// adopting is the certificate Adopt is adopting (nil in a Run): a
	// generation holding it is vouched for.
	adopting *x509.Certificate
	// held describes the other holder of the fleet lock when the run ended
	// Locked or LockStuck because of it.
	held *Result
}

// ending is how a step ended the run: its outcome, the error (nil for
// NotDue, Recovered and Renewed) and, when the step knows it, when to run
// again (zero: the Result's NextCheck comes from the decision or the
// state).
type ending struct {
	outcome   Outcome
	err       error
	nextCheck time.Time
}

// run is one certificate's run: the one step sequence of the package
// documentation, in both modes. What differs in fleet mode (the rules are in
// the package documentation's "Fleet mode") is the coordinator's (co:
// localRun or fleetRun), named at the step that calls it. Each step is a
// crash window the crash suite kills a process in; the crash points are
// named renew.run:N after step N (renew.run:8:journal before the order
// journal's write, renew.run:8:journaled after it, renew.run:15:hook after
// each hook).
//
//  0. view (fleet mode, in Run before any lineage runs): one Fleet.View of
//     every certificate; an error ends every lineage Deferred, and a record
//     that cannot be used (FleetView.Err) ends its lineage Failed, naming
//     it, with nothing local changed and nothing counted.
//  1. fast path, without the lock: state.json says the installed generation
//     is current, nothing is pending, no leftovers exist, and the policy
//     says not due (a stale ARI window counts as fresh when it is the one
//     co shares: sharedARI); co.settled agrees (fleet: the fleet's record
//     names the installed certificate and journals no order) → NotDue. No
//     write, no lock, no certificate parse.
//  2. lock: try the lineage lock; held → Locked, or LockStuck (a failure)
//     when the holder has held it longer than LockBound.
//  3. load: read state.json again under the lock (another process may have
//     renewed: the decision is re-made below); a corrupt file is reported
//     and rebuilt from what is on disk.
//  4. recover: delete temp leftovers; roll forward a complete, verified
//     generation newer than current that state.json, the order journal or
//     co (vouches) vouches for; finish an order journaled in pending.key
//     (download the certificate the CA issued, never order again); replay
//     pending hooks.
//  5. sync: co.sync installs a newer generation from elsewhere (fleet: the
//     fleet's current one) through steps 11 to 16 → Recovered unless due.
//  6. decide: expiry policy and ARI window (co's shared one when fresh; a
//     window fetched here is shared through co.shareARI); Force makes the
//     lineage due unless co.forceSatisfied (a fleet generation installed
//     by this run is the forced renewal: the fleet orders once).
//  7. gate: co.gate: not due → NotDue (or Recovered); the cross-run
//     backoff → BackingOff, unless the failure it records happened under
//     another configuration (Certificate.Fingerprint, names, key type,
//     profile); the preflight (the Issuer's Preflight and the hooks'
//     checks; a failure is local, fails at once and is not counted against
//     the CA's backoff); fleet: the fleet lock (held elsewhere → Locked),
//     the record re-read under it, a journaled order finished, an adoption.
//  8. obtain: order with in-run retries; before finalize the issuer calls
//     co.journal (pending.key, or the fleet's journal: a failure there
//     defers the run, never finalized).
//  9. verify: the leaf parses, matches the key and the names, chains, is
//     valid now.
//  10. publish: co.publish (fleet: the certificate becomes the fleet's
//     next generation; refused because the lock was lost → Failed, nothing
//     installed here, not counted, the order left in the fleet).
//  11. write: a new generation directory, every file fsynced
//     (co.installFailed says how a failure ends the run).
//  12. prune: keep the newest Keep generations (current and the new one
//     always survive). Done before the order journal is dropped, so that a
//     prune killed midway is seen and finished by the next run.
//  13. journal: state.json records the generation, its pending hooks and
//     the order as installed; the order journal is dropped.
//  14. swap: current → the new generation.
//  15. hooks: run them.
//  16. done: save what the hooks changed; co.finish completes the Result,
//     co.release lets go of the fleet lock, then the lineage lock goes.
//
// A failed attempt (steps 4 and 7 to 9) is counted from co.counting and
// recorded by co.recordFailure too (fleet: in the fleet's backoff, under
// the lock and before a publish).
func (r *Renewer) run(ctx context.Context, c Certificate, fv *FleetView) Result {
	now := r.now()
	if err := c.validate(); err != nil {
		return Result{Outcome: Failed, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return Result{Outcome: Interrupted, Err: fmt.Errorf("%s: interrupted: %w", c.Name, err)}
	}
	var co coordinator = localRun{}
	if fv != nil {
		// (0)
		if fv.Err != nil {
			return Result{Outcome: Failed, Err: badRecordErr(c.Name, fv.Err), NextCheck: now.Add(localRetryWait)}
		}
		co = &fleetRun{fleet: r.Fleet, view: *fv}
	}
	dir := r.lineageDir(c.Name)
	// (1)
	if !c.Force {
		if res, ok := r.fastPath(dir, c, now, co.sharedARI()); ok {
			if res, ok := co.settled(res); ok {
				return res
			}
		}
	}
	store, err := atomicfs.Open(dir, r.Modes)
	if err != nil {
		return Result{Outcome: Failed, Err: fmt.Errorf("%s: %w", c.Name, localDirError("lineage directory", dir, err)), NextCheck: now.Add(localRetryWait)}
	}
	// (2)
	lock, err := lockfile.TryLock(filepath.Join(dir, atomicfs.LockFile))
	if err != nil {
		if errors.Is(err, lockfile.ErrLocked) {
			return r.locked(c, err, now)
		}
		if ctx.Err() != nil {
			return Result{Outcome: Interrupted, Err: fmt.Errorf("%s: interrupted: %w", c.Name, err)}
		}
		return Result{Outcome: Failed, Err: fmt.Errorf("%s: lock: %w", c.Name, localDirError("lineage directory", dir, err)), NextCheck: now.Add(localRetryWait)}
	}
	l := &lineage{r: r, c: c, dir: dir, store: store, log: r.logger().With("name", c.Name), now: now, co: co}
	defer func() {
		// The kernel releases the flock when its descriptor closes,
		// whatever this says; a failure to close must at least be seen.
		if err := lock.Unlock(); err != nil {
			l.log.Warn("releasing the lineage lock", "error", err)
		}
	}()
	defer co.release(ctx, l) // (16) before the lineage lock
	crashpoint.Hit("renew", "run:2")
	return l.exec(ctx)
}

// fastPath is step 1: it decides without the lock and without writing
// whether the lineage is simply not due. ok is false when the full run is
// needed. shared is the coordinator's shared renewal window (nil: none):
// when fresh and the one the state has, it counts as a fresh local one.
func (r *Renewer) fastPath(dir string, c Certificate, now time.Time, shared *FleetARI) (Result, bool) {
	bp := statePool.Get().(*[]byte)
	defer statePool.Put(bp)
	b, err := readSmall(filepath.Join(dir, atomicfs.StateFile), *bp)
	if err != nil {
		return Result{}, false
	}
	*bp = b[:0]
	st, err := parseState(dir, b)
	if err != nil || st.Current == nil || st.Hooks.PendingCount() > 0 {
		return Result{}, false
	}
	if !sameRequest(c, st.Current) {
		return Result{}, false
	}
	if _, ok := r.Issuer.(RenewalInfoer); ok && (st.ARI == nil || st.ARI.Serial != st.Current.Serial || !now.Before(st.ARI.NextFetch)) &&
		!(st.ARI != nil && st.ARI.Serial == st.Current.Serial && sharedARIFresh(shared, st.Current.Serial, now, r.ariInterval()) && st.ARI.Start.Equal(shared.Start) && st.ARI.End.Equal(shared.End)) {
		return Result{}, false
	}
	// The served certificate and key must still be the ones installed (the
	// stats follow cert.pem → current → generation, so they also catch a
	// dangling link), and current must point where the state says: the
	// inode of cert.pem proves that where it is known, the link otherwise.
	if !st.Current.intact(dir) {
		return Result{}, false
	}
	if st.Current.CertIno == 0 {
		if seq, err := atomicfs.CurrentSeq(dir); err != nil || seq != st.Current.Seq {
			return Result{}, false
		}
	}
	if left, err := atomicfs.NeedsRecovery(dir, r.euid()); err != nil || left {
		return Result{}, false
	}
	d := decide(now, c, st)
	if d.Due || now.Before(st.RetryNotBefore) {
		return Result{}, false
	}
	res := Result{Outcome: NotDue}
	fill(&res, st, &d)
	return res, true
}

// statePool holds read buffers for the fast path.
var statePool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// fill copies into res what st says about the lineage and, when d is not
// nil, the decision: when to renew, why, and when to check again (the later
// of the renewal instant and the cross-run not-before).
func fill(res *Result, st *state, d *expiry.Decision) {
	if g := st.Current; g != nil {
		res.Generation = g.Seq
		res.Serial = g.Serial
		res.NotBefore = g.NotBefore
		res.NotAfter = g.NotAfter
	}
	res.Failures = st.Failures
	res.RetryNotBefore = st.RetryNotBefore
	res.LastSuccess = st.LastSuccess
	res.HooksPending = st.Hooks.PendingCount()
	if d != nil {
		res.RenewAt = d.RenewAt
		res.Reason = d.Reason
		res.NextCheck = latest(d.RenewAt, st.RetryNotBefore)
	}
}

// exec runs steps 3 to 16 under the lock and returns the Result.
func (l *lineage) exec(ctx context.Context) Result {
	// (3)
	st, err := loadState(l.dir)
	switch {
	case errors.Is(err, errStateCorrupt):
		l.log.Warn("state unusable; rebuilding it from the installed generation", "error", err)
	case err != nil:
		e := l.fail(fmt.Errorf("%s: %w", l.c.Name, err))
		return Result{Outcome: e.outcome, Err: e.err}
	}
	l.st = st
	if err == nil && !st.loose {
		l.saved, _ = st.encode()
	}
	var res Result
	e := l.steps(ctx, &res)
	l.finish(&res, e)
	return res
}

// steps runs steps 4 to 16 and returns how the run ended. Once step 6 has
// decided, the decision is in res.
func (l *lineage) steps(ctx context.Context, res *Result) ending {
	// (4)
	rec, end := l.recover(ctx)
	if end != nil {
		return *end
	}
	if rec.backingOff {
		return l.backOff()
	}
	// (5)
	synced, end := l.co.sync(ctx, l)
	if end != nil {
		return *end
	}
	// (6)
	d := l.decide(ctx)
	fill(res, l.st, &d)
	if d.Due {
		l.log.Debug("due", "reason", d.Reason)
	}
	// (7)
	if end := l.co.gate(ctx, l, d.Due, rec.installed || synced); end != nil {
		return *end
	}
	if err := ctx.Err(); err != nil {
		return l.interrupted(err)
	}
	// (8)
	key, err := l.newKey()
	if err != nil {
		return l.fail(err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return l.fail(fmt.Errorf("%s: %w", l.c.Name, err))
	}
	iss, err := l.obtain(ctx, key, keyPEM)
	if err != nil {
		if errors.Is(err, errFleetJournal) {
			return *l.deferred(ctx, err)
		}
		return l.failAttempt(ctx, err)
	}
	crashpoint.Hit("renew", "run:8")

	// (9)
	v, err := verify(l.c.Name, iss.Cert, iss.Chain, key, l.c.Domains, l.r.Roots, l.r.now())
	if err != nil {
		// A certificate not yet valid here is this machine's clock being
		// behind: keep the order, the next run installs it. Anything else
		// makes it unusable: resuming the order would fetch it again.
		if !errors.Is(err, errNotYetValid) {
			l.dropOrder(ctx)
		}
		return l.failAttempt(ctx, err)
	}
	if err := ctx.Err(); err != nil {
		return l.interrupted(err)
	}
	// (10) to (16)
	if end := l.installIssued(ctx, v, key); end != nil {
		return *end
	}
	l.issued = 1
	return ending{outcome: Renewed}
}

// preflight is the preflight of step 7: a failure is local and ends the
// run.
func (l *lineage) preflight(ctx context.Context) *ending {
	err := l.r.preflight(ctx, l.c)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		e := l.interrupted(err)
		return &e
	}
	e := l.failLocal(err)
	return &e
}

// finish completes res with how the run ended (e), the tallies and what
// the state says, saving the state first if it changed: a failed save
// fails a run that had not failed already.
func (l *lineage) finish(res *Result, e ending) {
	res.Outcome, res.Err = e.outcome, e.err
	if !e.nextCheck.IsZero() {
		res.NextCheck = e.nextCheck
	}
	res.Attempts, res.Issued, res.HookErr = l.attempts, l.issued, l.hookErr
	if l.changed() {
		if err := l.st.save(l.dir); err != nil {
			if res.Err == nil {
				res.Outcome = Failed
				res.Err = fmt.Errorf("%s: %w", l.c.Name, err)
			} else {
				l.log.Error("could not save state", "error", err)
			}
		}
	}
	fill(res, l.st, nil)
	if (res.Outcome == Renewed || res.Outcome == Recovered) && l.st.Current != nil {
		// What was installed is decided on afresh (it is not due: the
		// not-before of earlier failures is cleared).
		d := decide(l.r.now(), l.c, l.st)
		fill(res, l.st, &d)
	}
	if res.Outcome == Failed && res.NextCheck.IsZero() {
		res.NextCheck = l.st.RetryNotBefore
	}
	if h := l.held; h != nil {
		res.LockHolder, res.LockedSince, res.LockNode, res.Reason = h.LockHolder, h.LockedSince, h.LockNode, h.Reason
	}
	l.co.finish(res, l.st)
}

// save persists st now (for the journal steps that must be durable before
// the next one).
func (l *lineage) save() error {
	if err := l.st.save(l.dir); err != nil {
		return fmt.Errorf("%s: %w", l.c.Name, err)
	}
	l.markSaved()
	return nil
}

// changed reports whether st differs from what state.json holds, so that
// the run must save it. The steps change st and return their outcome; this
// comparison, not a flag each of them sets, decides whether a save is due.
func (l *lineage) changed() bool {
	b, err := l.st.encode()
	return err != nil || l.saved == nil || !bytes.Equal(b, l.saved)
}

// markSaved records st as what state.json now holds.
func (l *lineage) markSaved() { l.saved, _ = l.st.encode() }

// fail ends the run with err: Failed, or Interrupted when err is the
// context's.
func (l *lineage) fail(err error) ending {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ending{outcome: Interrupted, err: err}
	}
	return ending{outcome: Failed, err: err}
}

// interrupted ends the run as Interrupted: ctx ended (err says how).
func (l *lineage) interrupted(err error) ending {
	return ending{outcome: Interrupted, err: fmt.Errorf("%s: interrupted: %w", l.c.Name, err)}
}

// backOff ends the run as BackingOff: the persisted not-before of earlier
// failures has not passed.
func (l *lineage) backOff() ending {
	return l.backOffUntil(l.st.RetryNotBefore, l.st.Failures, l.st.LastError, "")
}

// backOffUntil ends the run as BackingOff until nb, after failures failed
// runs (where: "" here, " in the fleet") whose last failed with last.
func (l *lineage) backOffUntil(nb time.Time, failures int, last, where string) ending {
	return ending{outcome: BackingOff, nextCheck: nb, err: fmt.Errorf("%s: %w until %s after %d failed runs%s (Force retries now); last error: %s",
		l.c.Name, errBackingOff, nb.UTC().Format(time.RFC3339), failures, where, orNone(last))}
}

func orNone(s string) string {
	if s == "" {
		return "(none recorded)"
	}
	return s
}

// localRetryWait is how soon running again is worth it after a local
// failure (Result.NextCheck): someone has to fix something here first, and
// no CA is involved.
const localRetryWait = 5 * time.Minute

// failLocal records a failure caused on this machine (a *LocalError): the
// run fails and state.json says why, but the failure count and the
// persisted not-before of the CA's backoff do not change.
func (l *lineage) failLocal(err error) ending {
	now := l.r.now()
	l.st.LastAttempt = now
	l.st.LastOutcome = Failed
	l.st.LastError = textclip.Head(err.Error(), 500)
	l.st.LastErrorLocal = true
	l.st.LastErrorPermanent = true // a LocalError is
	return ending{outcome: Failed, err: fmt.Errorf("%s: %w", l.c.Name, err), nextCheck: now.Add(localRetryWait)}
}

// failAttempt records a failed issuance: the failure count and the
// persisted not-before grow, unless the run was merely interrupted or the
// failure is local and no order had reached the CA (a *LocalError that is
// not Ordered: this machine's fault, not the CA's, see failLocal). The
// count continues co's (co.counting), and co records the failure too
// (fleet: in the fleet's backoff, under the lock).
func (l *lineage) failAttempt(ctx context.Context, err error) ending {
	if ctx.Err() != nil {
		return l.interrupted(errors.Join(ctx.Err(), err))
	}
	if le := (*LocalError)(nil); errors.As(err, &le) && !le.Ordered {
		return l.failLocal(err)
	}
	now := l.r.now()
	base, record := l.co.counting(l.st)
	l.st.Failures = base + 1
	l.st.LastAttempt = now
	l.st.LastOutcome = Failed
	l.st.LastError = textclip.Head(err.Error(), 500)
	l.st.LastErrorLocal = false
	l.st.LastErrorPermanent = backoff.ClassOf(err) == backoff.ClassPermanent
	l.st.FailedConfig = l.c.configHash()
	var v expiry.Validity
	if g := l.st.Current; g != nil {
		v = expiry.Validity{NotBefore: g.NotBefore, NotAfter: g.NotAfter}
	}
	nb := backoff.NotBefore(l.st.Failures, now, v.NotBefore, v.NotAfter)
	var rl *backoff.RateLimitedError
	if errors.As(err, &rl) && now.Add(rl.RetryAfter).After(nb) {
		ra := now.Add(rl.RetryAfter)
		// A CA asking for years must not park the lineage past expiry.
		if limit := backoff.RetryAfterLimit(now, v.NotBefore, v.NotAfter); ra.After(limit) {
			l.log.Warn("the CA's Retry-After is past the cross-run limit; clamped", "retry_after", rl.RetryAfter, "retry_not_before", limit)
			ra = limit
		}
		nb = latest(nb, ra)
	}
	l.st.RetryNotBefore = nb
	if record {
		l.co.recordFailure(ctx, l)
	}
	return ending{outcome: Failed, err: fmt.Errorf("%s: %w", l.c.Name, err), nextCheck: nb}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
