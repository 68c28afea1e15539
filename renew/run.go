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
	// fleet is the fleet's side of the run in fleet mode, nil otherwise.
	fleet *fleetRun
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

// run is one certificate's run. Its steps, each a crash window the crash
// suite kills a process in:
//
//  1. fast path, without the lock: state.json says the installed generation
//     is current, nothing is pending, no leftovers exist, and the policy
//     says not due → NotDue. No write, no lock, no certificate parse.
//  2. lock: try the lineage lock; held → Locked, or LockStuck (a failure)
//     when the holder has held it longer than LockBound.
//  3. load: read state.json again under the lock (another process may have
//     renewed: the decision is re-made below); a corrupt file is reported
//     and rebuilt from what is on disk.
//  4. recover: delete temp leftovers; roll forward a complete, verified
//     generation newer than current; finish a journaled order (download
//     the certificate the CA issued, never order again); replay pending
//     hooks.
//  5. decide: expiry policy and ARI window; not due → NotDue (or Recovered).
//  6. gate: the persisted not-before of cross-run backoff → BackingOff,
//     unless the failure it records happened under another configuration
//     (Certificate.Fingerprint, names, key type, profile).
//  7. obtain: preflight (the Issuer's Preflight and the hooks' checks; a
//     failure is local, fails at once and is not counted against the CA's
//     backoff), then order with in-run retries; before finalize the issuer
//     calls the journal, which saves the new key (pending.key) and the
//     order URL (state.json).
//  8. verify: the leaf parses, matches the key and the names, chains, is
//     valid now.
//  9. write: a new generation directory, every file fsynced.
//  10. prune: keep the newest Keep generations (current and the new one
//     always survive). Done before the order journal is dropped, so that a
//     prune killed midway is seen and finished by the next run.
//  11. journal: state.json records the generation, its pending hooks and
//     the order as installed; the order journal (pending.key) is dropped.
//  12. swap: current → the new generation.
//  13. hooks: run them.
//  14. done: save what the hooks changed.
//
// In fleet mode (Renewer.Fleet set; fr is the lineage's fleet record, see
// the package documentation's "Fleet mode") the fleet is the source of
// truth and the steps become:
//
//   - (0) view (in Run, before any lineage runs): one Fleet.View for every
//     certificate; an error ends every lineage Deferred.
//   - (a) a record that cannot be used (fr.Err) → Failed naming it; nothing
//     local changes, nothing is counted.
//   - (b) fast path: step 1, and the fleet's record names the installed
//     certificate and journals no order → NotDue. A stale local ARI window
//     that is the fleet's fresh one counts as fresh.
//   - (c) steps 2 to 4 unchanged (an order journaled in pending.key before
//     fleet mode is finished as there, installed here only; a generation
//     holding the fleet's current certificate is rolled forward).
//   - (d) sync: the fleet's current generation is not the installed one →
//     Fleet.Current, verified as in step 8, installed by steps 9 to 14 →
//     Recovered, unless it is due; one that fails verification → Failed,
//     nothing installed. Not when it has expired or is for other names
//     (the names were changed: it is replaced by an order, never by an
//     adoption, and never installed), nor when the installed
//     certificate outlives it while it is due or is a later fleet
//     generation (the fleet went back: restored from a backup); that one
//     is adopted below.
//   - (e) decide: step 5, with the fleet's ARI window when it is fresh and
//     this node's is not; a window this node fetches is written to the
//     fleet if the fleet lock can be taken at once. Not due → NotDue or
//     Recovered, unless the fleet journals an order (finished below) or
//     has no generation, or an older due one, while this one is valid
//     (adoption below).
//   - (f) gate: the fleet's backoff instead of step 6 (Force bypasses).
//   - (g) when this node is to order (due, no order for its names
//     journaled in fr),
//     step 7's preflight first: a failure fails the run as there, without
//     taking the fleet lock (a node that cannot order holds nobody back and
//     wakes no other node's watch). Then the fleet lock, under the lineage
//     lock: held by another node → Locked or LockStuck (Result.LockNode);
//     any other error → Deferred.
//   - (h) re-read the record under it (an error → Deferred): another node
//     published meanwhile → sync it (d), order nothing; a journaled order →
//     resume it (as step 4, its key from the fleet), or, when it is for
//     other names and this run is due, drop it; adoption → publish the
//     installed generation as the fleet's next, NotDue; gate again (f).
//   - (i) step 7 (its preflight unless done in g): the order journal is
//     the fleet's (FleetLock.Journal; a failure → Deferred, never
//     finalized); crash points fleet.journaled, fleet.obtained.
//   - (j) step 8, then publish (FleetLock.Publish; crash point
//     fleet.published); a failure (fenced: the lock was lost) → Failed,
//     nothing installed here, not counted, the order left in the fleet.
//   - (k) steps 9 to 14: install here → Renewed.
//   - (l) a failed attempt is counted from the fleet's count and written to
//     the fleet's backoff (FleetLock.Fail) as well as to state.json; local
//     failures, among them a failure to install the fleet's generation (a
//     full disk), are not written to the fleet.
//   - (m) the fleet lock is released, then the lineage lock.
func (r *Renewer) run(ctx context.Context, c Certificate, fr *FleetRecord) Result {
	now := r.now()
	if err := c.validate(); err != nil {
		return Result{Outcome: Failed, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return Result{Outcome: Interrupted, Err: fmt.Errorf("%s: interrupted: %w", c.Name, err)}
	}
	// (a)
	if fr != nil && fr.Err != nil {
		return Result{Outcome: Failed, Err: badRecordErr(c.Name, fr.Err), NextCheck: now.Add(localRetryWait)}
	}
	dir := r.lineageDir(c.Name)
	// (1), (b)
	if !c.Force {
		if res, ok := r.fastPath(dir, c, now, fr); ok {
			if fr == nil {
				return res
			}
			if fr.Generation != 0 && fr.Serial == res.Serial && fr.Order == nil {
				res.FleetGeneration = fr.Generation
				return res
			}
		}
	}
	store, err := atomicfs.Open(dir, r.Modes)
	if err != nil {
		return Result{Outcome: Failed, Err: fmt.Errorf("%s: %w", c.Name, localDirError("lineage directory", dir, err)), NextCheck: now.Add(localRetryWait)}
	}
	// (2)
	unlock, err := r.locker().TryLock(ctx, c.Name)
	if err != nil {
		if errors.Is(err, lockfile.ErrLocked) {
			return r.locked(c, err, now)
		}
		if ctx.Err() != nil {
			return Result{Outcome: Interrupted, Err: fmt.Errorf("%s: interrupted: %w", c.Name, err)}
		}
		return Result{Outcome: Failed, Err: fmt.Errorf("%s: lock: %w", c.Name, localDirError("lineage directory", dir, err)), NextCheck: now.Add(localRetryWait)}
	}
	l := &lineage{r: r, c: c, dir: dir, store: store, log: r.logger().With("name", c.Name), now: now}
	defer func() {
		// A flock is released by the kernel when its descriptor closes,
		// whatever this says; a distributed Locker's failure to let go
		// must at least be seen.
		if err := unlock(); err != nil {
			l.log.Warn("releasing the lineage lock", "error", err)
		}
	}()
	if fr != nil {
		l.fleet = &fleetRun{rec: *fr}
		defer l.fleetUnlock() // (m) before the lineage lock
	}
	crashpoint.Hit("renew", "locked")
	return l.exec(ctx)
}

// fastPath decides without the lock and without writing whether the
// lineage is simply not due. ok is false when the full run is needed. fr
// is the fleet's record (nil outside fleet mode): a fresh fleet renewal
// window that is the one the state has counts as a fresh local one.
func (r *Renewer) fastPath(dir string, c Certificate, now time.Time, fr *FleetRecord) (Result, bool) {
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
		!(st.ARI != nil && st.ARI.Serial == st.Current.Serial && fleetARIFresh(fr, st.Current.Serial, now, r.ariInterval()) && st.ARI.Start.Equal(fr.ARIStart) && st.ARI.End.Equal(fr.ARIEnd)) {
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

// exec runs steps 3 to 14 under the lock and returns the Result.
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

// steps runs steps 4 to 14 and returns how the run ended. Once step 5 has
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
	// (d)
	if l.fleet != nil {
		synced, end := l.fleetSync(ctx)
		if end != nil {
			return *end
		}
		rec.installed = rec.installed || synced
	}

	// (5), (e)
	d := l.decide(ctx)
	fill(res, l.st, &d)
	if d.Due {
		l.log.Debug("due", "reason", d.Reason)
	}
	if l.fleet != nil {
		// (f) to (h)
		if end := l.fleetGate(ctx, d.Due, rec.installed); end != nil {
			return *end
		}
	} else if !d.Due {
		if rec.installed {
			return ending{outcome: Recovered}
		}
		return ending{outcome: NotDue}
	} else if !l.c.Force && l.now.Before(l.st.RetryNotBefore) {
		// (6)
		if h := l.c.configHash(); l.st.FailedConfig == "" || l.st.FailedConfig == h {
			return l.backOff()
		}
		l.log.Info("configuration changed since the last failure; not backing off", "retry_not_before", l.st.RetryNotBefore)
	}
	if err := ctx.Err(); err != nil {
		return l.interrupted(err)
	}

	// (7)
	if l.fleet == nil || !l.fleet.preflighted {
		if end := l.preflight(ctx); end != nil {
			return *end
		}
	}
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
	if l.fleet != nil {
		crashpoint.Hit("fleet", "obtained")
	} else {
		crashpoint.Hit("renew", "obtained")
	}

	// (8)
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
	// (j), (9) to (14)
	if end := l.installIssued(ctx, v, key); end != nil {
		return *end
	}
	l.issued = 1
	return ending{outcome: Renewed}
}

// preflight is the preflight of step 7 (in fleet mode, of step g): a
// failure is local and ends the run.
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
	if l.fleet != nil {
		l.fleet.fill(res, l.st)
	}
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
// not Ordered: this machine's fault, not the CA's, see failLocal). In
// fleet mode, under the fleet lock, the count continues the fleet's and
// the result is written to the fleet's backoff too (step l).
func (l *lineage) failAttempt(ctx context.Context, err error) ending {
	if ctx.Err() != nil {
		return l.interrupted(errors.Join(ctx.Err(), err))
	}
	if le := (*LocalError)(nil); errors.As(err, &le) && !le.Ordered {
		return l.failLocal(err)
	}
	now := l.r.now()
	f := l.fleetCounting()
	if f != nil {
		l.st.Failures = f.rec.Failures
	}
	l.st.Failures++
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
	if f != nil {
		l.fleetFail(ctx, f)
	}
	return ending{outcome: Failed, err: fmt.Errorf("%s: %w", l.c.Name, err), nextCheck: nb}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
