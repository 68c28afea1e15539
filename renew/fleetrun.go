package renew

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/internal/crashpoint"
	"github.com/renewkit/renewkit/lockfile"
)

// The fleet's coordinator of a run (Renewer.Fleet set). The steps are
// listed on run and the fleet's rules in the package documentation ("Fleet
// mode"); the local work (recovery, the install of a generation, hooks, the
// state) is the single-node path's.

// fleetRun is the fleet's coordinator (fleet mode): the fleet is the
// source of newer generations (step 5), its backoff and lock are the gate
// (step 7), its journal holds the order (step 8), a certificate is
// published before it is installed here (step 10), and a failure under the
// lock is the fleet's (recordFailure).
type fleetRun struct {
	fleet Fleet
	// view is what the fleet last said about the lineage: View's record,
	// then the lock's Record, updated with what this run wrote.
	view FleetView
	// lock is the fleet lock, held from step 7 to the end of the run;
	// tried is set once the run asked for it.
	lock  FleetLock
	tried bool
	// ari is a renewal window this run fetched for the fleet's current
	// certificate, to be shared at the end of the run (nil: none).
	ari *FleetARI
	// synced is set once this run installed the fleet's current generation
	// (steps 5 and 7): a forced run takes it as its renewal.
	synced bool
	// published is set once this run's certificate is the fleet's current
	// generation: a failure after that (installing it here) is this node's
	// alone and is not written to the fleet.
	published bool
}

var _ coordinator = (*fleetRun)(nil)

// fleetRetryWait is how soon a run deferred because the fleet could not be
// consulted is worth repeating (Result.NextCheck).
const fleetRetryWait = time.Minute

// errDeferred is matched by the Err of a Deferred Result.
var errDeferred = errors.New("renewal deferred: fleet unavailable")

// errFleetJournal marks the failure to journal an order in the fleet: the
// order was not finalized, and the run is deferred, not failed.
var errFleetJournal = errors.New("could not journal the order in the fleet")

// deferredErr is the Err of a Deferred Result: err is why the fleet could
// not be consulted.
func deferredErr(name string, err error) error {
	return fmt.Errorf("%s: %w: %w; the installed certificate is still served", name, errDeferred, err)
}

// badRecordErr is the Err of a run stopped by a fleet record that cannot
// be used (FleetView.Err or an error matching ErrFleetRecord, which names
// the record).
func badRecordErr(name string, err error) error {
	return fmt.Errorf("%s: the fleet's record is unusable; nothing is renewed or installed until it is repaired, and the installed certificate is still served: %w", name, err)
}

// viewFleet is step 0: one Fleet.View of every certificate that will run
// (the valid ones among work), returned per index of certs (nil for the
// others, which fail validation before they use it).
func (r *Renewer) viewFleet(ctx context.Context, certs []Certificate, work []int) ([]*FleetView, error) {
	recs := make([]*FleetView, len(certs))
	idx := make([]int, 0, len(work))
	ask := make([]Certificate, 0, len(work))
	for _, i := range work {
		if certs[i].validate() == nil {
			idx = append(idx, i)
			ask = append(ask, certs[i])
		}
	}
	if len(ask) == 0 {
		return recs, nil
	}
	got, err := r.Fleet.View(ctx, ask)
	if err != nil {
		return nil, err
	}
	if len(got) != len(ask) {
		return nil, fmt.Errorf("fleet view: %d records for %d certificates", len(got), len(ask))
	}
	for j, i := range idx {
		recs[i] = &got[j]
	}
	return recs, nil
}

// deferredResult is the Result of a run the fleet could not be consulted
// for (err): nothing local changed.
func (r *Renewer) deferredResult(ctx context.Context, c Certificate, err error) Result {
	if ctx.Err() != nil {
		return Result{Outcome: Interrupted, Err: fmt.Errorf("%s: interrupted: %w", c.Name, err)}
	}
	return Result{Outcome: Deferred, Err: deferredErr(c.Name, err), NextCheck: r.now().Add(fleetRetryWait)}
}

// deferred ends the run as Deferred (or Interrupted when ctx ended): err
// is why the fleet could not be consulted.
func (l *lineage) deferred(ctx context.Context, err error) *ending {
	if ctx.Err() != nil {
		e := l.interrupted(err)
		return &e
	}
	return &ending{outcome: Deferred, err: deferredErr(l.c.Name, err), nextCheck: l.r.now().Add(fleetRetryWait)}
}

// badRecord ends the run as Failed because of an unusable fleet record;
// it is not counted against the CA's backoff.
func (l *lineage) badRecord(err error) *ending {
	return &ending{outcome: Failed, err: badRecordErr(l.c.Name, err), nextCheck: l.r.now().Add(localRetryWait)}
}

// settled is step 1 in fleet mode: the fleet's record names the installed
// certificate and journals no order.
func (f *fleetRun) settled(res Result) (Result, bool) {
	if f.view.Current.Number != 0 && f.view.Current.Serial == res.Serial && f.view.Order == nil {
		res.FleetGeneration = f.view.Current.Number
		return res, true
	}
	return res, false
}

// sharedARI is the fleet's renewal window.
func (f *fleetRun) sharedARI() *FleetARI { return &f.view.ARI }

// vouches: the fleet's current certificate (a run killed while installing
// it, whether it published it or synced it) is vouched for by the fleet,
// and installing it is what this run would do.
func (f *fleetRun) vouches(serial string) (uint64, bool) {
	g := f.view.Current
	return g.Number, g.Number != 0 && g.Serial == serial
}

func (f *fleetRun) forceSatisfied() bool { return f.synced }

// sync is step 5: when the fleet's current generation is not the one
// installed here and is to be installed (skip), it reads it
// (Fleet.Current), verifies it like an issued certificate (fetch) and
// installs it through steps 11 to 16. It reports whether it installed one;
// a non-nil ending ends the run. A generation that fails verification is
// not installed (Failed, naming it). Renewer.Plan makes the same decisions
// with the same functions.
func (f *fleetRun) sync(ctx context.Context, l *lineage) (bool, *ending) {
	switch why := f.skip(l); why {
	case "":
	case skipNames:
		l.log.Info("the fleet's current generation is for other names; not installing it", "fleet_generation", f.view.Current.Number, "fleet_names", f.view.Current.Domains)
		return false, nil
	case skipExpired:
		l.log.Warn("the fleet's current generation has expired; not installing it", "fleet_generation", f.view.Current.Number, "not_after", f.view.Current.NotAfter)
		return false, nil
	default:
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		e := l.interrupted(err)
		return false, &e
	}
	cur, v, key, end := f.fetch(ctx, l)
	if end != nil || v == nil {
		return false, end
	}
	l.log.Info("installing the fleet's current generation", "fleet_generation", cur.Number, "serial", cur.Serial, "publisher", cur.Publisher)
	if end := l.install(ctx, v, key, cur.Number); end != nil {
		return false, end
	}
	f.synced = true
	return true, nil
}

// Why step 5 does not install the fleet's current generation (see skip).
const (
	skipNone    = "-" // nothing to install: none, or the one installed here
	skipNewer   = "the certificate installed here outlives it (a run publishes the installed one over it)"
	skipNames   = "it is for other names (the lineage's names were changed: a run orders for the configured names)"
	skipExpired = "it has expired (a run orders a new one)"
)

// skip says why step 5 does not install the fleet's current generation
// (skipNone, skipNewer, skipNames, skipExpired), or "" when it does. The
// generation for other names is replaced (the lineage is due where the
// installed certificate is for other names too), never installed; an
// expired one would fail verification on every node and none would ever
// order, so the lineage is renewed instead.
func (f *fleetRun) skip(l *lineage) string {
	g := f.view.Current
	switch {
	case g.Number == 0 || f.has(l):
		return skipNone
	case f.localNewer(l):
		return skipNewer
	case l.otherNames(g.Domains):
		return skipNames
	case !g.NotAfter.IsZero() && !l.now.Before(g.NotAfter):
		return skipExpired
	}
	return ""
}

// fetch reads the fleet's current generation (Fleet.Current) and verifies
// it as an issued certificate (step 9's checks, and the record's serial):
// v is nil with a nil ending when there is nothing to install after all
// (the generation changed meanwhile to the installed one, or to one for
// other names); a non-nil ending ends the run (the record is unusable, the
// fleet unreachable, the generation fails verification).
func (f *fleetRun) fetch(ctx context.Context, l *lineage) (FleetBundle, *verified, crypto.Signer, *ending) {
	cur, err := f.fleet.Current(ctx, l.c)
	if errors.Is(err, ErrFleetRecord) {
		return cur, nil, nil, l.badRecord(err)
	}
	if err != nil {
		return cur, nil, nil, l.deferred(ctx, err)
	}
	if cur.Number == 0 {
		return cur, nil, nil, nil
	}
	f.view.Current = cur.FleetGeneration
	if f.has(l) || l.otherNames(cur.Domains) {
		return cur, nil, nil, nil
	}
	key, err := parseKey(cur.Key)
	var v *verified
	if err == nil {
		v, err = verify(l.c.Name, cur.Cert, cur.Chain, key, l.c.Domains, l.r.Roots, l.r.now())
	} else {
		err = fmt.Errorf("%w: %s: private key: %w", errVerify, l.c.Name, err)
	}
	if err == nil && serialHex(v.leaf.SerialNumber) != cur.Serial {
		err = fmt.Errorf("%w: %s: the certificate's serial is %s, the record says %s", errVerify, l.c.Name, serialHex(v.leaf.SerialNumber), cur.Serial)
	}
	if err != nil {
		return cur, nil, nil, &ending{outcome: Failed, nextCheck: l.r.now().Add(localRetryWait),
			err: fmt.Errorf("%s: not installing the fleet's generation %d (serial %s, published by %s); the installed certificate is still served: %w",
				l.c.Name, cur.Number, cur.Serial, orNone(cur.Publisher), err)}
	}
	return cur, v, key, nil
}

// localNewer reports whether the generation installed here, for the
// configured names, must be published rather than replaced by the fleet's
// current one (adoption, step 7). It must not expire before the fleet's
// current one, and either the fleet had it after its current one (the
// fleet went back), or it expires after the fleet's current one while that
// one is due (it was installed outside the fleet: the CLI's -no-fleet
// escape hatch during an etcd outage, an order journaled before fleet
// mode). A fleet generation that is not due is installed even over a newer
// one, so that nodes joining with certificates of their own reload once.
func (f *fleetRun) localNewer(l *lineage) bool {
	g, fg := l.st.Current, f.view.Current
	if g == nil || fg.Number == 0 || g.Serial == fg.Serial || !sameRequest(l.c, g) {
		return false
	}
	if l.otherNames(fg.Domains) {
		// Never published over a generation for other names without an
		// order: nodes not all configured with the same names would
		// otherwise republish their own, in turn, for ever.
		return false
	}
	if g.NotAfter.Before(fg.NotAfter) {
		// Whatever the numbers say, the fleet's certificate is newer than
		// this one: after its records were deleted or restored, a node
		// that lagged behind installs it rather than publish its older
		// one over it.
		return false
	}
	if g.FleetGen > fg.Number {
		// The fleet went back (etcd restored from an older backup) to a
		// certificate no newer than this one: this node does not follow
		// it back but publishes what it has.
		return true
	}
	if !g.NotAfter.After(fg.NotAfter) {
		return false
	}
	p := l.c.Policy
	if p == nil {
		p = expiry.DefaultPolicy()
	}
	return expiry.DecideAt(l.now, expiry.Validity{NotBefore: fg.NotBefore, NotAfter: fg.NotAfter}, p, nil, time.Time{}).Due
}

// otherNames reports whether names (of the fleet's generation or of a
// journaled order) are not the configured ones: the lineage's names were
// changed since it was written. Unknown names (empty) are not other names.
func (l *lineage) otherNames(names []string) bool {
	return len(names) != 0 && !slices.Equal(normDomains(names), normDomains(l.c.Domains))
}

// order is the order the fleet journals for the configured names (nil if
// none, or for other names: see gate).
func (f *fleetRun) order(l *lineage) *FleetOrder {
	if o := f.view.Order; o != nil && !l.otherNames(o.Domains) {
		return o
	}
	return nil
}

// has reports whether the generation installed here is the fleet's
// current one, recording the fleet's number of it in the state.
func (f *fleetRun) has(l *lineage) bool {
	g := l.st.Current
	if g == nil || g.Serial != f.view.Current.Serial {
		return false
	}
	g.FleetGen = f.view.Current.Number
	return true
}

// gate is step 7 in fleet mode: it ends the run (not due, backing off,
// the lock held elsewhere, the fleet changed under the lock, a journaled
// order finished, an adoption) or returns nil with the fleet lock held and
// the record re-read, for this run to order.
func (f *fleetRun) gate(ctx context.Context, l *lineage, due, installed bool) *ending {
	notDue := &ending{outcome: NotDue}
	if installed {
		notDue.outcome = Recovered
	}
	adopt := f.adopts(l, due)
	if !due && !adopt && f.order(l) == nil {
		return notDue
	}
	// A journaled order is finished (never a wasted issuance) even when
	// the lineage is not due here, unless the fleet backs off.
	if due || f.order(l) != nil {
		if e := f.backingOff(l); e != nil {
			return e
		}
	}
	// A node that cannot order (a busy port, DNS credentials missing)
	// finds out before it takes the fleet lock: it holds no other node
	// back, and wakes no other node's watch, for a failure of its own.
	if due && f.order(l) == nil {
		if e := l.preflight(ctx); e != nil {
			return e
		}
	}
	if err := ctx.Err(); err != nil {
		e := l.interrupted(err)
		return &e
	}
	if end := f.takeLock(ctx, l); end != nil {
		return end
	}
	cur, err := f.lock.Record(ctx)
	if err != nil {
		return l.deferred(ctx, err)
	}
	if cur.Err != nil {
		return l.badRecord(cur.Err)
	}
	if (cur.Current.Number != f.view.Current.Number || cur.Current.Serial != f.view.Current.Serial) && !l.otherNames(cur.Current.Domains) {
		// Another node published since the view: install that; order
		// nothing. (A generation for other names is replaced below.)
		l.log.Debug("the fleet changed since the view", "fleet_generation", cur.Current.Number)
		f.view = cur
		synced, end := f.sync(ctx, l)
		if end != nil {
			return end
		}
		if synced || installed {
			return &ending{outcome: Recovered}
		}
		return &ending{outcome: NotDue}
	}
	f.view = cur
	if o := cur.Order; o != nil && l.otherNames(o.Domains) && due {
		// Placed before the lineage's names were changed: its certificate
		// could not be installed. Dropped, and ordered anew for the
		// configured names.
		l.log.Info("the fleet's journaled order is for other names; dropping it and ordering for the configured names", "order", o.OrderURL, "order_names", o.Domains, "placed_by", o.Node)
		f.dropOrder(ctx, l)
	}
	if f.order(l) != nil {
		if e := f.backingOff(l); e != nil {
			return e
		}
		done, end := f.resume(ctx, l)
		if end != nil {
			return end
		}
		if done {
			return &ending{outcome: Recovered}
		}
	}
	if adopt {
		return f.adopt(ctx, l)
	}
	if !due {
		return notDue
	}
	return f.backingOff(l)
}

// adopts reports whether step 7 publishes the generation installed here
// as the fleet's next without an order (adoption): the lineage is not due,
// and the fleet has no generation or an older one than this node's (see
// localNewer).
func (f *fleetRun) adopts(l *lineage, due bool) bool {
	return !due && l.st.Current != nil && (f.view.Current.Number == 0 || f.localNewer(l))
}

// takeLock takes the fleet lock unless this run holds it already: held by
// another node → Locked or LockStuck
// (Result.LockNode); any other error → Deferred.
func (f *fleetRun) takeLock(ctx context.Context, l *lineage) *ending {
	if f.lock != nil {
		return nil
	}
	f.tried = true
	lock, err := f.fleet.Lock(ctx, l.c)
	if err != nil {
		if errors.Is(err, lockfile.ErrLocked) {
			res := l.r.locked(l.c, err, l.r.now())
			l.held = &res
			return &ending{outcome: res.Outcome, err: res.Err}
		}
		return l.deferred(ctx, err)
	}
	f.lock = lock
	return nil
}

// backingOff is the gate of the fleet's cross-run backoff (as state.json's
// is the single-node one): nil when the run may go on.
func (f *fleetRun) backingOff(l *lineage) *ending {
	b := f.view.Backoff
	if l.c.Force || !l.now.Before(b.RetryNotBefore) {
		return nil
	}
	if h := l.c.configHash(); b.FailedConfig != "" && b.FailedConfig != h {
		l.log.Info("configuration changed since the fleet's last failure; not backing off", "retry_not_before", b.RetryNotBefore)
		return nil
	}
	e := l.backOffUntil(b.RetryNotBefore, b.Failures, b.LastError, " in the fleet")
	return &e
}

// resume finishes the order journaled in the fleet (step 7), with the key
// journaled with it, through the same resume as a local order. It reports
// whether it installed the certificate; false with a nil ending when the
// order is gone (dropped: the run may order anew).
func (f *fleetRun) resume(ctx context.Context, l *lineage) (bool, *ending) {
	fo := f.view.Order
	o := InFlight{OrderURL: fo.OrderURL, Domains: fo.Domains, Created: fo.Created, Name: l.c.Name}
	key, err := parseKey(fo.Key)
	if err != nil {
		l.log.Warn("the fleet's journaled order has no usable key; dropping it", "order", o.OrderURL, "error", err)
		f.dropOrder(ctx, l)
		return false, nil
	}
	l.log.Info("finishing the order journaled in the fleet", "order", o.OrderURL, "placed_by", fo.Node)
	l.order = &pendingOrder{rec: o, key: key, in: f}
	return l.resume(ctx)
}

// journal is step 8's journal in fleet mode: the order and its key go to
// the fleet, under the lock, before finalize. A failure is errFleetJournal:
// the order is not finalized and the run is deferred.
func (f *fleetRun) journal(ctx context.Context, l *lineage, rec InFlight, key crypto.Signer, keyPEM []byte) error {
	crashpoint.Hit("renew", "run:8:journal")
	o := FleetOrder{OrderURL: rec.OrderURL, Domains: rec.Domains, Created: rec.Created, Key: keyPEM}
	if err := f.lock.Journal(ctx, o); err != nil {
		return backoff.Permanent(fmt.Errorf("journal order %s: %w: %w", rec.OrderURL, errFleetJournal, err))
	}
	crashpoint.Hit("renew", "run:8:journaled")
	rec.Name = l.c.Name
	l.order = &pendingOrder{rec: rec, key: key, in: f}
	o.Key = nil
	f.view.Order = &o
	return nil
}

// dropOrder forgets the order journaled in the fleet.
func (f *fleetRun) dropOrder(ctx context.Context, l *lineage) {
	if f.lock == nil {
		return
	}
	if err := f.lock.DropOrder(ctx); err != nil {
		l.log.Warn("could not drop the fleet's order journal", "error", err)
		return
	}
	f.view.Order = nil
}

// publish is step 10: under the fleet lock, the verified certificate
// becomes the fleet's next generation before anything is installed here. A
// failure (the lock lost: fenced) installs nothing and is not counted; the
// order stays journaled in the fleet for the next holder of the lock.
func (f *fleetRun) publish(ctx context.Context, l *lineage, v *verified, key crypto.Signer) (uint64, *ending) {
	if f.lock == nil {
		return 0, nil
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		e := l.fail(fmt.Errorf("%s: %w", l.c.Name, err))
		return 0, &e
	}
	b := f.next(v.leaf, encodeChain([]*x509.Certificate{v.leaf}), encodeChain(v.chain), keyPEM)
	if err := f.lock.Publish(ctx, b); err != nil {
		if ctx.Err() != nil {
			e := l.interrupted(err)
			return 0, &e
		}
		return 0, &ending{outcome: Failed, nextCheck: l.r.now().Add(fleetRetryWait),
			err: fmt.Errorf("%s: publish generation %d to the fleet: %w (nothing installed here: this node lost the fleet lock; its holder finishes the journaled order, if it has not already, and the next run installs the fleet's generation)", l.c.Name, b.Number, err)}
	}
	crashpoint.Hit("renew", "run:10")
	f.published = true
	f.setCurrent(b.FleetGeneration)
	// Publish cleared the fleet's order journal in the same write.
	if l.order != nil && l.order.in == coordinator(f) {
		l.order = nil
	}
	l.log.Info("published to the fleet", "fleet_generation", b.Number, "serial", b.Serial)
	return b.Number, nil
}

// adopt publishes the generation installed here as the fleet's next
// without an order (step 7): the lineage is not due here and the fleet has
// none (forming a fleet from nodes that already have a certificate: it
// becomes generation 1) or an older one (localNewer).
func (f *fleetRun) adopt(ctx context.Context, l *lineage) *ending {
	cur, err := l.store.Current()
	if err != nil {
		e := l.fail(fmt.Errorf("%s: adopt the installed generation: %w", l.c.Name, err))
		return &e
	}
	leaf, _, ok := l.verifyGeneration(cur)
	if !ok {
		e := l.fail(fmt.Errorf("%s: %w: the installed generation %d does not verify; not publishing it to the fleet", l.c.Name, errVerify, cur.Seq))
		return &e
	}
	files, err := l.store.Read(cur)
	if err != nil {
		e := l.fail(fmt.Errorf("%s: adopt the installed generation: %w", l.c.Name, err))
		return &e
	}
	b := f.next(leaf, files.Cert, files.Chain, files.Key)
	if err := f.lock.Publish(ctx, b); err != nil {
		return l.deferred(ctx, fmt.Errorf("publish the installed generation as the fleet's generation %d: %w", b.Number, err))
	}
	f.setCurrent(b.FleetGeneration)
	f.has(l)
	l.log.Info("published the installed generation to the fleet (adoption)", "fleet_generation", b.Number, "serial", b.Serial)
	return &ending{outcome: NotDue}
}

// installFailed: the certificate is the fleet's generation (synced, or
// published by this run), so writing it is this node's problem, not the
// CA's: a *LocalError (see failLocal), never written to the fleet's
// backoff, and the next run installs the fleet's generation.
func (f *fleetRun) installFailed(ctx context.Context, l *lineage, err error, fleetGen uint64) ending {
	if fleetGen == 0 {
		// Neither synced nor published: an order journaled in pending.key
		// before fleet mode, installed here only.
		return l.failAttempt(ctx, fmt.Errorf("install: %w", err))
	}
	return l.failLocal(&LocalError{What: "lineage directory " + l.dir, Err: fmt.Errorf("install the fleet's generation %d: %w", fleetGen, err),
		Fix: "free disk space or repair the lineage directory; the next run installs the fleet's generation"})
}

// counting: under the fleet lock and before anything was published, a
// failed attempt continues the fleet's count and is recorded in the
// fleet's backoff, so that every node waits; otherwise it is this node's.
func (f *fleetRun) counting(st *state) (int, bool) {
	if f.lock != nil && !f.published {
		return f.view.Backoff.Failures, true
	}
	return st.Failures, false
}

// recordFailure writes the failed attempt st records to the fleet's
// backoff.
func (f *fleetRun) recordFailure(ctx context.Context, l *lineage) {
	b := FleetBackoff{Failures: l.st.Failures, RetryNotBefore: l.st.RetryNotBefore, LastError: l.st.LastError, FailedConfig: l.st.FailedConfig}
	if err := f.lock.Fail(ctx, b); err != nil {
		l.log.Warn("could not record the failure in the fleet; other nodes may try before the backoff ends", "error", err)
		return
	}
	f.view.Backoff = b
}

// shareARI keeps the window a this node fetched for the fleet's current
// certificate, to be recorded in the fleet by release, through the one
// fleet lock of the run.
func (f *fleetRun) shareARI(ctx context.Context, l *lineage, a *ariState) {
	// Only the window of the fleet's current certificate is worth
	// sharing: a node still serving an older one (lagging, or its install
	// failed) would overwrite the up-to-date nodes' window with its own,
	// and each side would fetch again and write its own back every
	// interval.
	if a.Serial != f.view.Current.Serial {
		return
	}
	f.ari = &FleetARI{Serial: a.Serial, Start: a.Start, End: a.End, ExplanationURL: a.ExplanationURL, NextFetch: a.NextFetch}
}

// release records the window shareARI kept, when it is still the one of
// the fleet's current certificate, through the fleet lock this run holds or
// takes without waiting (so a run takes the fleet lock once at most); then
// it lets go of the lock, before the lineage lock. When another node holds
// the lock or the fleet cannot be reached, the window stays this node's
// alone, and the next fetch tries again.
func (f *fleetRun) release(ctx context.Context, l *lineage) {
	if w := f.ari; w != nil && w.Serial == f.view.Current.Serial && ctx.Err() == nil {
		if f.lock == nil && !f.tried {
			lock, err := f.fleet.Lock(ctx, l.c)
			if err != nil {
				l.log.Debug("the ARI renewal window is not shared with the fleet", "error", err)
			}
			f.lock = lock
		}
		if f.lock != nil {
			if err := f.lock.PutARI(ctx, *w); err != nil {
				l.log.Debug("the ARI renewal window is not shared with the fleet", "error", err)
			} else {
				f.view.ARI = *w
			}
		}
	}
	if f.lock != nil {
		if err := f.lock.Unlock(); err != nil {
			l.log.Warn("releasing the fleet lock", "error", err)
		}
	}
}

// next is the bundle that publishes leaf (with the PEM of its
// certificate, chain and key) as the fleet's next generation.
func (f *fleetRun) next(leaf *x509.Certificate, cert, chain, key []byte) FleetBundle {
	return FleetBundle{
		FleetGeneration: FleetGeneration{
			Number:    f.view.Current.Number + 1,
			Serial:    serialHex(leaf.SerialNumber),
			Domains:   leafNames(leaf),
			NotBefore: leaf.NotBefore,
			NotAfter:  leaf.NotAfter,
		},
		Cert: cert, Chain: chain, Key: key,
	}
}

// setCurrent records that g was published: the fleet's current generation,
// with its order journal and backoff cleared (Publish clears them in the
// same write).
func (f *fleetRun) setCurrent(g FleetGeneration) {
	f.view.Current = g
	f.view.Order = nil
	f.view.Backoff = FleetBackoff{}
}

// finish completes res with what the fleet says: the fleet's number of the
// installed generation and the fleet's backoff.
func (f *fleetRun) finish(res *Result, st *state) {
	if g := st.Current; g != nil {
		res.FleetGeneration = g.FleetGen
		if g.Serial == f.view.Current.Serial {
			res.FleetGeneration = f.view.Current.Number
		}
	}
	if f.view.Backoff.Failures > res.Failures {
		res.Failures = f.view.Backoff.Failures
	}
	res.RetryNotBefore = latest(res.RetryNotBefore, f.view.Backoff.RetryNotBefore)
}
