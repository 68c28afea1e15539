package renew

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/crashpoint"
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
	// dirty is set when st changed and must be saved before the run ends.
	dirty bool
	// Tallies for the Result: ACME attempts made, certificates issued to
	// this run (0 or 1), and the hooks' failure.
	attempts, issued int
	hookErr          error
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
func (r *Renewer) run(ctx context.Context, c Certificate) Result {
	now := r.now()
	if err := c.validate(); err != nil {
		return Result{Outcome: Failed, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return Result{Outcome: Interrupted, Err: fmt.Errorf("%s: interrupted: %w", c.Name, err)}
	}
	dir := r.lineageDir(c.Name)
	// (1)
	if !c.Force {
		if res, ok := r.fastPath(dir, c, now); ok {
			return res
		}
	}
	store, err := atomicfs.Open(dir, r.StoreOptions...)
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
	defer unlock()
	crashpoint.Hit("renew", "locked")
	l := &lineage{r: r, c: c, dir: dir, store: store, log: r.logger().With("name", c.Name), now: now}
	return l.exec(ctx)
}

// fastPath decides without the lock and without writing whether the
// lineage is simply not due. ok is false when the full run is needed.
func (r *Renewer) fastPath(dir string, c Certificate, now time.Time) (Result, bool) {
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
	if _, ok := r.Issuer.(RenewalInfoer); ok && (st.ARI == nil || st.ARI.Serial != st.Current.Serial || !now.Before(st.ARI.NextFetch)) {
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

// sameRequest reports whether the installed generation was obtained for
// what c asks for now (a change of names or key type makes it due).
func sameRequest(c Certificate, g *genInfo) bool {
	if g.KeyType != "" && g.KeyType != c.KeyType.orDefault() {
		return false
	}
	return slices.Equal(normDomains(c.Domains), normDomains(g.Domains))
}

// decide applies c's policy and the persisted ARI window to the installed
// generation.
func decide(now time.Time, c Certificate, st *state) expiry.Decision {
	p := c.Policy
	if p == nil {
		p = expiry.DefaultPolicy()
	}
	v := expiry.Validity{NotBefore: st.Current.NotBefore, NotAfter: st.Current.NotAfter}
	var w *expiry.Window
	if a := st.ARI; a != nil && a.Serial == st.Current.Serial && !a.End.IsZero() {
		w = &expiry.Window{Start: a.Start, End: a.End, ExplanationURL: a.ExplanationURL}
	}
	var picked time.Time
	if w != nil {
		picked = st.ARI.Picked
	}
	return expiry.DecideAt(now, v, p, w, picked)
}

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
		l.dirty = true
	case err != nil:
		e := l.fail(fmt.Errorf("%s: %w", l.c.Name, err))
		return Result{Outcome: e.outcome, Err: e.err}
	}
	l.st = st
	if st.loose {
		l.dirty = true
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

	// (5)
	d := l.decide(ctx)
	fill(res, l.st, &d)
	if !d.Due {
		if rec.installed {
			return ending{outcome: Recovered}
		}
		return ending{outcome: NotDue}
	}
	l.log.Debug("due", "reason", d.Reason)

	// (6)
	if !l.c.Force && l.now.Before(l.st.RetryNotBefore) {
		if h := l.c.configHash(); l.st.FailedConfig == "" || l.st.FailedConfig == h {
			return l.backOff()
		}
		l.log.Info("configuration changed since the last failure; not backing off", "retry_not_before", l.st.RetryNotBefore)
	}
	if err := ctx.Err(); err != nil {
		return l.interrupted(err)
	}

	// (7)
	if err := l.r.preflight(ctx, l.c); err != nil {
		if ctx.Err() != nil {
			return l.interrupted(err)
		}
		return l.failLocal(err)
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
		return l.failAttempt(ctx, err)
	}
	crashpoint.Hit("renew", "obtained")

	// (8)
	v, err := verify(l.c.Name, iss.Cert, iss.Chain, key, l.c.Domains, l.r.Roots, l.r.now())
	if err != nil {
		// A certificate not yet valid here is this machine's clock being
		// behind: keep the order, the next run installs it. Anything else
		// makes it unusable: resuming the order would fetch it again.
		if !errors.Is(err, errNotYetValid) {
			l.dropOrder()
		}
		return l.failAttempt(ctx, err)
	}
	if err := ctx.Err(); err != nil {
		return l.interrupted(err)
	}
	// (9) to (14)
	if end := l.install(ctx, v, key); end != nil {
		return *end
	}
	l.issued = 1
	return ending{outcome: Renewed}
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
	if l.dirty {
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
}

// save persists st now (for the journal steps that must be durable before
// the next one).
func (l *lineage) save() error {
	if err := l.st.save(l.dir); err != nil {
		return fmt.Errorf("%s: %w", l.c.Name, err)
	}
	l.dirty = false
	return nil
}

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
	return ending{outcome: BackingOff, nextCheck: l.st.RetryNotBefore, err: fmt.Errorf("%s: %w until %s after %d failed runs (Force retries now); last error: %s",
		l.c.Name, ErrBackingOff, l.st.RetryNotBefore.UTC().Format(time.RFC3339), l.st.Failures, orNone(l.st.LastError))}
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
	l.st.LastError = truncate(err.Error(), 500)
	l.st.LastErrorLocal = true
	l.dirty = true
	return ending{outcome: Failed, err: fmt.Errorf("%s: %w", l.c.Name, err), nextCheck: now.Add(localRetryWait)}
}

// failAttempt records a failed issuance: the failure count and the
// persisted not-before grow, unless the run was merely interrupted or the
// failure is local (errors.Is ErrLocal: this machine's fault, not the
// CA's, see failLocal).
func (l *lineage) failAttempt(ctx context.Context, err error) ending {
	if ctx.Err() != nil {
		return l.interrupted(errors.Join(ctx.Err(), err))
	}
	if errors.Is(err, ErrLocal) {
		return l.failLocal(err)
	}
	now := l.r.now()
	l.st.Failures++
	l.st.LastAttempt = now
	l.st.LastOutcome = Failed
	l.st.LastError = truncate(err.Error(), 500)
	l.st.LastErrorLocal = false
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
	l.dirty = true
	return ending{outcome: Failed, err: fmt.Errorf("%s: %w", l.c.Name, err), nextCheck: nb}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// newKey returns the key to order with: the installed one when ReuseKey is
// set and its type matches, a fresh one otherwise.
func (l *lineage) newKey() (crypto.Signer, error) {
	if l.c.ReuseKey && l.st.Current != nil {
		if cur, err := l.store.Current(); err == nil {
			if f, err := l.store.Read(cur); err == nil {
				if k, err := parseKey(f.Key); err == nil && keyTypeOf(k.Public()) == l.c.KeyType.orDefault() {
					return k, nil
				}
			}
		}
		l.log.Info("installed key not reusable; generating a new one")
	}
	k, err := GenerateKey(l.c.KeyType)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.c.Name, err)
	}
	return k, nil
}

// obtain orders a certificate with in-run retries (step 7).
func (l *lineage) obtain(ctx context.Context, key crypto.Signer, keyPEM []byte) (*Issued, error) {
	req := IssueRequest{Name: l.c.Name, Domains: canonicalNames(l.c.Domains), Key: key, Profile: l.c.Profile}
	if _, ok := l.r.Issuer.(RenewalInfoer); ok && l.st.Current != nil && sameRequest(l.c, l.st.Current) {
		if leaf, err := l.currentLeaf(); err == nil {
			req.Replaces = leaf
		}
	}
	journal := func(ctx context.Context, rec InFlight) error {
		crashpoint.Hit("renew", "journal.begin")
		// Key and order in one atomic write: before it the CA cannot have
		// issued anything, after it the next run can always finish the
		// order.
		data, err := encodePending(keyPEM, rec)
		if err == nil {
			err = l.store.SavePendingKey(data)
		}
		if err != nil {
			return backoff.Permanent(fmt.Errorf("journal order %s: %w", rec.OrderURL, err))
		}
		l.order = &pendingOrder{rec: rec, key: key}
		crashpoint.Hit("renew", "journal.saved")
		return nil
	}
	var iss *Issued
	attempt := 0
	opts := append([]backoff.Option{backoff.WithNotify(func(a backoff.Attempt) {
		if l.r.Observer != nil {
			l.r.Observer.Attempted(AttemptEvent{Name: l.c.Name, Attempt: a.Number, Err: a.Err, Wait: a.Wait})
		}
		l.log.Warn("issuance attempt failed", "attempt", a.Number, "retry_in", a.Wait, "error", a.Err)
	})}, l.r.retryOpts...)
	err := backoff.Do(ctx, l.r.Retry, func(ctx context.Context) error {
		attempt++
		l.attempts++
		if l.order != nil {
			// An earlier attempt of this run reached finalize: finish that
			// order rather than ordering again.
			if rs, ok := l.r.Issuer.(Resumer); ok {
				got, err := rs.Resume(ctx, l.order.rec)
				if err == nil {
					iss = got
					return nil
				}
				if !errors.Is(err, ErrOrderGone) {
					return err
				}
				l.dropOrder()
			}
		}
		got, err := l.r.Issuer.Issue(ctx, req, journal)
		if err != nil {
			return err
		}
		iss = got
		return nil
	}, opts...)
	if l.r.Observer != nil {
		// The last attempt: WithNotify reports only those followed by a wait.
		l.r.Observer.Attempted(AttemptEvent{Name: l.c.Name, Attempt: attempt, Err: err})
	}
	if err != nil {
		return nil, err
	}
	return iss, nil
}

// dropOrder forgets the journaled order and its key.
func (l *lineage) dropOrder() {
	l.order = nil
	if err := l.store.RemovePendingKey(); err != nil {
		l.log.Warn("could not remove the order journal", "error", err)
	}
}

// currentLeaf parses the installed certificate.
func (l *lineage) currentLeaf() (*x509.Certificate, error) {
	cur, err := l.store.Current()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cur.Dir, atomicfs.CertFile)
	data, err := atomicfs.ReadFile(path, expiry.MaxChainSize)
	if err != nil {
		return nil, err
	}
	chain, err := expiry.ParseChain(path, data)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

// install runs steps 9 to 14 for a verified certificate and returns nil,
// or how the run ended. A failure to write the generation (a full disk,
// mostly) is recorded like a failed attempt, with the failure count, error
// and not-before; the order journal is kept, so the next run installs this
// certificate instead of ordering another.
func (l *lineage) install(ctx context.Context, v *verified, key crypto.Signer) *ending {
	// (9)
	keyPEM, err := encodeKey(key)
	if err != nil {
		e := l.fail(fmt.Errorf("%s: %w", l.c.Name, err))
		return &e
	}
	files := atomicfs.Files{
		Cert:  encodeChain([]*x509.Certificate{v.leaf}),
		Chain: encodeChain(v.chain),
		Key:   keyPEM,
	}
	gen, err := l.store.Install(files)
	if err != nil {
		e := l.failAttempt(ctx, fmt.Errorf("install: %w", err))
		return &e
	}
	crashpoint.Hit("renew", "installed")
	if err := l.commit(ctx, gen, v.leaf, key); err != nil {
		e := l.fail(err)
		return &e
	}
	return nil
}

// commit runs steps 10 to 14 for a complete, verified generation: prune,
// journal its hooks, drop the order journal, make it current, run the
// hooks. key is the generation's private key, which tells whether it
// holds the journaled order's certificate.
func (l *lineage) commit(ctx context.Context, gen atomicfs.Generation, leaf *x509.Certificate, key crypto.Signer) error {
	info := &genInfo{
		Seq:       gen.Seq,
		Serial:    serialHex(leaf.SerialNumber),
		Domains:   leafNames(leaf),
		KeyType:   keyTypeOf(leaf.PublicKey),
		Profile:   l.c.Profile,
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
	}
	info.stamp(gen.Dir)
	// (10)
	if pruned, err := l.store.Prune(l.r.keep()); err != nil {
		l.log.Warn("prune failed", "error", err)
	} else if len(pruned) > 0 {
		l.log.Debug("pruned", "generations", len(pruned))
	}
	crashpoint.Hit("renew", "pruned")
	// (11) One state write journals the hooks, records the generation and
	// the success it will be once current; a crash before (12) is rolled
	// forward by the next run, which finds this generation newer than
	// current.
	ev := hooks.Event{
		Lineage:    l.c.Name,
		Dir:        l.dir,
		Domains:    slices.Clone(l.c.Domains),
		Generation: gen.Seq,
		NotAfter:   leaf.NotAfter,
		Serial:     info.Serial,
	}
	if err := l.st.Hooks.Record(ev, l.c.Hooks, l.log); err != nil {
		return fmt.Errorf("%s: journal hooks: %w", l.c.Name, err)
	}
	holdsOrder := l.order != nil && sameKey(l.order.key, key)
	if holdsOrder {
		l.st.LastOrder = l.order.rec.OrderURL
	}
	l.st.Current = info
	now := l.r.now()
	l.st.LastAttempt = now
	l.st.LastSuccess = now
	l.st.Failures = 0
	l.st.RetryNotBefore = time.Time{}
	l.st.LastError = ""
	l.st.LastErrorLocal = false
	l.st.FailedConfig = ""
	l.st.LastOutcome = Renewed
	l.st.ARI = nil
	if err := l.save(); err != nil {
		return err
	}
	crashpoint.Hit("renew", "journaled")
	// The order journal is done with: state.json now names its order as
	// installed (and this generation newer than current, for a roll
	// forward). The removal becomes durable with the swap's fsync below;
	// should it be lost, the next run recognises the order and removes it.
	if holdsOrder {
		l.dropOrder()
	}
	// (12)
	if err := l.store.Activate(gen); err != nil {
		return fmt.Errorf("%s: activate generation %d: %w", l.c.Name, gen.Seq, err)
	}
	crashpoint.Hit("renew", "swapped")
	l.log.Info("installed", "generation", gen.Seq, "serial", info.Serial, "not_after", leaf.NotAfter)
	// (13)
	l.runHooks(ctx)
	// (14) Save what the hooks changed.
	if l.dirty {
		if err := l.save(); err != nil {
			return err
		}
	}
	crashpoint.Hit("renew", "done")
	return nil
}

// sameKey reports whether a and b are the same key pair.
func sameKey(a, b crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pa, ok := a.Public().(equaler)
	return ok && pa.Equal(b.Public())
}

// runHooks replays the hook journal (step 13 and recovery). A hook's
// success is saved with the next state write rather than one of its own:
// should the process die before that, the hook runs again, which at-least-
// once delivery allows (hooks are idempotent), and a renewal saves two
// fsyncs per hook.
func (l *lineage) runHooks(ctx context.Context) {
	if l.st.Hooks.PendingCount() == 0 {
		return
	}
	persist := func(*hooks.Journal) error {
		crashpoint.Hit("renew", "hook.ran")
		l.dirty = true
		return nil
	}
	hctx, cancel := l.r.hookContext(ctx)
	defer cancel()
	if err := l.st.Hooks.Replay(hctx, l.c.Hooks, persist, l.log); err != nil {
		l.hookErr = fmt.Errorf("%s: %w", l.c.Name, err)
	}
	l.dirty = true
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf("%x", n)
}

// recovery is what step 4 did.
type recovery struct {
	// installed is set when recovery installed a generation: rolled
	// forward to it, or finished a journaled order.
	installed bool
	// backingOff is set when recovery left a journaled order alone because
	// of the cross-run backoff.
	backingOff bool
}

// recover is step 4. A non-nil ending ends the run.
func (l *lineage) recover(ctx context.Context) (recovery, *ending) {
	rec, end := l.recoverSteps(ctx)
	if end == nil || end.outcome == Interrupted {
		return rec, end
	}
	// A failure of the resumed order keeps the not-before it recorded;
	// whether it ends the run Failed or Interrupted follows from the error,
	// as for any other failure of recovery.
	e := l.fail(end.err)
	e.nextCheck = end.nextCheck
	return rec, &e
}

// recoverSteps does step 4's work for recover.
func (l *lineage) recoverSteps(ctx context.Context) (recovery, *ending) {
	var out recovery
	fail := func(err error) (recovery, *ending) {
		e := ending{outcome: Failed, err: err}
		return out, &e
	}
	rep, err := l.store.Recover()
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return fail(fmt.Errorf("%s: recover: %w", l.c.Name, err))
		}
		// current points to a generation that is gone: nothing usable is
		// served, so the lineage is due (or a newer generation is rolled
		// forward below), and the swap replaces the dangling link.
		l.log.Warn("current generation missing; the lineage is due", "error", err)
	}
	crashpoint.Hit("renew", "recovered.fs")
	for _, u := range rep.Untrusted {
		l.log.Error("not rolling forward a generation another user could have written", "generation", u.Seq, "error", u.Err)
	}
	// What state.json journaled (step 11) before syncCurrent aligns it with
	// current: it vouches for a generation a killed run did not activate.
	journaled := l.st.Current
	// Bring st.Current in line with what current points to.
	l.syncCurrent()
	// The order journal of a killed run, if any. One that cannot be read
	// (a FIFO, a huge file: never one Install wrote) is unusable, like
	// garbage.
	data, err := l.store.PendingKey()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.log.Warn("removing an unusable order journal", "error", err)
		l.dropOrder()
	}
	if err == nil {
		o, err := decodePending(data)
		switch {
		case err != nil:
			l.log.Warn("removing an unusable order journal", "error", err)
			l.dropOrder()
		case o.rec.OrderURL == l.st.LastOrder:
			l.dropOrder() // installed already; only its removal was lost
		default:
			l.order = o
		}
	}
	// Roll forward the newest complete generation newer than current that
	// this lineage's own journals vouch for and that verifies: a killed run
	// wrote it but did not make it current.
	newer := slices.Clone(rep.Newer)
	slices.SortFunc(newer, func(a, b atomicfs.Generation) int { return b.Seq - a.Seq })
	for _, g := range newer {
		leaf, key, ok := l.verifyGeneration(g)
		if !ok {
			continue
		}
		if !l.vouched(g, journaled, leaf, key) {
			l.log.Error("not rolling forward a generation neither state.json nor the order journal knows; it was not installed by a renewal of this lineage", "generation", g.Seq, "dir", g.Dir)
			continue
		}
		l.log.Info("rolling forward a generation a killed run installed", "generation", g.Seq)
		if l.order != nil && sameKey(l.order.key, key) {
			l.issued = 1
		}
		if err := l.commit(ctx, g, leaf, key); err != nil {
			return fail(err)
		}
		out.installed = true
		break
	}
	// Finish an order a killed run finalized but did not install, unless
	// earlier failures to do so set a not-before that has not passed.
	// A resume cut short by the context still lets the replay below run
	// (and save), then ends the run Interrupted.
	var interrupted *ending
	if l.order != nil {
		if !l.c.Force && l.now.Before(l.st.RetryNotBefore) {
			out.backingOff = true
		} else {
			installed, end := l.resume(ctx)
			if end != nil && end.outcome != Interrupted {
				return out, end
			}
			interrupted = end
			out.installed = out.installed || installed
		}
	}
	// Replay hooks a killed run left pending, and save at once: a run that
	// is itself killed later (while ordering, say) must not replay them
	// again on every start.
	if l.st.Hooks.PendingCount() > 0 {
		l.runHooks(ctx)
		if err := l.save(); err != nil {
			return fail(err)
		}
	}
	return out, interrupted
}

// vouched reports whether generation g (its verified leaf and key) is one a
// renewal of this lineage installed: a generation is written (step 9) while
// the order journal holds its key, and state.json names it (step 11) before
// the order journal is dropped, so a killed run's generation always has one
// of the two. Anything else in generations/ was put there by someone else,
// however self-consistent, and is never served (invariant 7).
func (l *lineage) vouched(g atomicfs.Generation, journaled *genInfo, leaf *x509.Certificate, key crypto.Signer) bool {
	if journaled != nil && journaled.Seq == g.Seq && journaled.Serial == serialHex(leaf.SerialNumber) {
		return true
	}
	// The order's key, and the names it was placed for, as resume checks.
	return l.order != nil && sameKey(l.order.key, key) && slices.Equal(normDomains(l.order.rec.Domains), leafNames(leaf))
}

// resume installs the certificate of an order a killed run journaled and
// reports whether it did; a non-nil ending ends the run.
func (l *lineage) resume(ctx context.Context) (bool, *ending) {
	o := l.order
	rs, ok := l.r.Issuer.(Resumer)
	if !ok {
		l.log.Warn("issuer cannot resume orders; ordering anew", "order", o.rec.OrderURL)
		l.dropOrder()
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		e := l.interrupted(err)
		return false, &e
	}
	l.log.Info("resuming an order a killed run finalized", "order", o.rec.OrderURL)
	var iss *Issued
	err := backoff.Do(ctx, l.r.Retry, func(ctx context.Context) error {
		l.attempts++
		got, err := rs.Resume(ctx, o.rec)
		if errors.Is(err, ErrOrderGone) {
			return backoff.Permanent(err)
		}
		iss = got
		return err
	}, l.r.retryOpts...)
	if errors.Is(err, ErrOrderGone) {
		l.log.Warn("journaled order is gone; ordering anew", "order", o.rec.OrderURL, "error", err)
		l.dropOrder()
		return false, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			e := l.interrupted(err)
			return false, &e
		}
		e := l.failAttempt(ctx, fmt.Errorf("resume order %s: %w", o.rec.OrderURL, err))
		return false, &e
	}
	v, err := verify(l.c.Name, iss.Cert, iss.Chain, o.key, o.rec.Domains, l.r.Roots, l.r.now())
	if err != nil {
		if !errors.Is(err, errNotYetValid) {
			l.dropOrder()
		}
		e := l.failAttempt(ctx, err)
		return false, &e
	}
	if end := l.install(ctx, v, o.key); end != nil {
		return false, end
	}
	l.issued = 1
	return true, nil
}

// verifyGeneration reads back and checks a generation found on disk.
func (l *lineage) verifyGeneration(g atomicfs.Generation) (*x509.Certificate, crypto.Signer, bool) {
	f, err := l.store.Read(g)
	if err != nil {
		l.log.Warn("generation unreadable", "generation", g.Seq, "error", err)
		return nil, nil, false
	}
	key, err := parseKey(f.Key)
	if err != nil {
		l.log.Warn("generation has an unreadable key", "generation", g.Seq)
		return nil, nil, false
	}
	chain, err := expiry.ParseChain(filepath.Join(g.Dir, atomicfs.CertFile), f.Cert)
	if err != nil {
		l.log.Warn("generation has an unreadable certificate", "generation", g.Seq, "error", err)
		return nil, nil, false
	}
	v, err := verify(l.c.Name, f.Cert, f.Chain, key, leafNames(chain[0]), l.r.Roots, l.r.now())
	if err == nil {
		err = checkBundles(g.Dir, v.leaf)
	}
	if err != nil {
		l.log.Warn("generation fails verification", "generation", g.Seq, "error", err)
		return nil, nil, false
	}
	return v.leaf, key, true
}

// checkBundles checks that the generation's fullchain.pem and combined.pem
// hold leaf with its key, as Install wrote them.
func checkBundles(dir string, leaf *x509.Certificate) error {
	read := func(name string) ([]byte, error) {
		return atomicfs.ReadFile(filepath.Join(dir, name), atomicfs.MaxFileSize)
	}
	full, err := read(atomicfs.FullchainFile)
	if err != nil {
		return err
	}
	key, err := read(atomicfs.KeyFile)
	if err != nil {
		return err
	}
	comb, err := read(atomicfs.CombinedFile)
	if err != nil {
		return err
	}
	for name, pair := range map[string][2][]byte{atomicfs.FullchainFile: {full, key}, atomicfs.CombinedFile: {comb, comb}} {
		c, err := tls.X509KeyPair(pair[0], pair[1])
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		if !c.Leaf.Equal(leaf) {
			return fmt.Errorf("%s: holds another certificate than cert.pem", filepath.Join(dir, name))
		}
	}
	return nil
}

// syncCurrent makes st.Current describe what current points to, parsing its
// certificate when the state does not know it (a corrupt or lost state, a
// killed run, someone else's change). An unreadable certificate leaves
// st.Current nil, which makes the lineage due.
func (l *lineage) syncCurrent() {
	cur, err := l.store.Current()
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.log.Warn("current generation unusable; the lineage is due", "error", err)
		}
		if l.st.Current != nil {
			l.st.Current = nil
			l.dirty = true
		}
		return
	}
	if l.st.Current != nil && l.st.Current.Seq == cur.Seq && l.st.Current.intact(l.dir) {
		return
	}
	leaf, _, ok := l.verifyGeneration(cur)
	if !ok {
		l.log.Warn("installed certificate unusable; the lineage is due", "generation", cur.Seq)
		l.st.Current = nil
		l.dirty = true
		return
	}
	l.st.Current = &genInfo{
		Seq:       cur.Seq,
		Serial:    serialHex(leaf.SerialNumber),
		Domains:   leafNames(leaf),
		KeyType:   keyTypeOf(leaf.PublicKey),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
	}
	l.st.Current.stamp(cur.Dir)
	l.dirty = true
}

// decide is step 5: policy, ARI and the state of what is installed.
func (l *lineage) decide(ctx context.Context) expiry.Decision {
	if l.st.Current == nil {
		return expiry.Decision{Due: true, RenewAt: l.now, Reason: "no usable certificate installed"}
	}
	if !sameRequest(l.c, l.st.Current) {
		return expiry.Decision{Due: true, RenewAt: l.now, Reason: "configured names or key type changed"}
	}
	// A certificate someone damaged after we recorded it (truncated
	// cert.pem) is due even though the state says otherwise.
	if _, err := l.currentLeaf(); err != nil {
		l.log.Warn("installed certificate unreadable; the lineage is due", "error", err)
		return expiry.Decision{Due: true, RenewAt: l.now, Reason: "installed certificate unreadable"}
	}
	l.refreshARI(ctx)
	d := decide(l.now, l.c, l.st)
	if l.c.Force {
		d.Due = true
		d.Reason = "forced"
	}
	return d
}

// refreshARI fetches the CA's renewal window when it is time to.
func (l *lineage) refreshARI(ctx context.Context) {
	ri, ok := l.r.Issuer.(RenewalInfoer)
	if !ok {
		return
	}
	a := l.st.ARI
	if a != nil && a.Serial == l.st.Current.Serial && l.now.Before(a.NextFetch) {
		return
	}
	leaf, err := l.currentLeaf()
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := ri.RenewalInfo(cctx, leaf)
	next := &ariState{Serial: l.st.Current.Serial}
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		next.NextFetch = l.now.Add(24 * time.Hour)
	case err != nil:
		l.log.Warn("could not fetch the ARI renewal window; using the policy", "error", err)
		next.NextFetch = l.now.Add(time.Hour)
		if a != nil && a.Serial == next.Serial {
			// Keep the window we had.
			*next = *a
			next.NextFetch = l.now.Add(time.Hour)
		}
	default:
		next.Start, next.End, next.ExplanationURL = w.Start, w.End, w.ExplanationURL
		next.NextFetch = l.now.Add(l.r.ariInterval())
		if a != nil && a.Serial == next.Serial && a.Start.Equal(w.Start) && a.End.Equal(w.End) {
			next.Picked = a.Picked
		} else if w.End.After(w.Start) {
			l.r.withRand(func(r *rand.Rand) { next.Picked = w.Pick(r) })
			// A window that reaches into the last tenth of the lifetime
			// (some CAs clamp short certificates' windows to the whole
			// lifetime) could pick an instant too close to expiry to renew,
			// retry and reload in time: such a pick is moved back to where
			// the last tenth begins. Real windows end long before.
			g := l.st.Current
			if limit := g.NotAfter.Add(-g.NotAfter.Sub(g.NotBefore) / 10); next.Picked.After(limit) {
				next.Picked = limit
			}
		}
	}
	l.st.ARI = next
	l.dirty = true
}
