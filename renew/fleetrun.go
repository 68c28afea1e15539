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

// The fleet path of a run (Renewer.Fleet set). The steps are listed on
// run; the functions here are the ones only fleet mode calls. The local
// work (recovery, the install of a generation, hooks, the state) is the
// single-node path's: only who journals the order, who decides about the
// backoff and where a certificate comes from differ.

// fleetRun is the fleet's side of one lineage's run.
type fleetRun struct {
	// rec is what the fleet last said about the lineage: View's record,
	// then the lock's Record, updated with what this run wrote.
	rec FleetRecord
	// lock is the fleet lock, held from step g to the end of the run.
	lock FleetLock
	// preflighted is set once step g ran the preflight (before the lock):
	// step 7 does not run it again.
	preflighted bool
	// published is set once this run's certificate is the fleet's current
	// generation: a failure after that (installing it here) is this node's
	// alone and is not written to the fleet.
	published bool
}

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
// be used (FleetRecord.Err, which names the record).
func badRecordErr(name string, err error) error {
	return fmt.Errorf("%s: the fleet's record is unusable; nothing is renewed or installed until it is repaired, and the installed certificate is still served: %w", name, err)
}

// viewFleet is step 0: one Fleet.View of every certificate that will run
// (the valid ones among work), returned per index of certs (nil for the
// others, which fail validation before they use it).
func (r *Renewer) viewFleet(ctx context.Context, certs []Certificate, work []int) ([]*FleetRecord, error) {
	recs := make([]*FleetRecord, len(certs))
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
	if err := r.ensureAccount(ctx, ask); err != nil {
		// Not with a possibly different account (fleetaccount.go).
		if ctx.Err() != nil || !(errors.Is(err, ErrLocal) || errors.Is(err, ErrFleetRecord)) {
			return nil, err // Deferred (Interrupted)
		}
		for j, i := range idx {
			recs[i] = &FleetRecord{Name: ask[j].Name, Err: fmt.Errorf("the fleet's ACME account: %w", err)}
		}
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

// fleetSync is step d: when the fleet's current generation is not the one
// installed here, it reads it (Fleet.Current), verifies it like an issued
// certificate and installs it through the same install as a renewal. It
// reports whether it installed one; a non-nil ending ends the run. A
// generation that fails verification is not installed (Failed, naming it).
func (l *lineage) fleetSync(ctx context.Context) (bool, *ending) {
	f := l.fleet
	if f.rec.Generation == 0 || l.fleetHas() || l.localNewer() {
		return false, nil
	}
	if l.otherNames(f.rec.Domains) {
		// The lineage's names were changed: the fleet's generation is
		// replaced (the lineage is due where the installed certificate is
		// for other names too), never installed.
		l.log.Info("the fleet's current generation is for other names; not installing it", "fleet_generation", f.rec.Generation, "fleet_names", f.rec.Domains)
		return false, nil
	}
	if !f.rec.NotAfter.IsZero() && !l.now.Before(f.rec.NotAfter) {
		// Nothing to install (it would fail verification on every node,
		// and none would ever order): the lineage is renewed below.
		l.log.Warn("the fleet's current generation has expired; not installing it", "fleet_generation", f.rec.Generation, "not_after", f.rec.NotAfter)
		return false, nil
	}
	if err := l.checkFleetNumber(f.rec.Generation, f.rec.Serial); err != nil {
		return false, l.badRecord(err)
	}
	if err := ctx.Err(); err != nil {
		e := l.interrupted(err)
		return false, &e
	}
	cur, err := l.r.Fleet.Current(ctx, l.c)
	if err != nil {
		return false, l.deferred(ctx, err)
	}
	if cur.Err != nil {
		return false, l.badRecord(cur.Err)
	}
	if cur.Generation == 0 {
		return false, nil
	}
	f.rec.Generation, f.rec.Serial, f.rec.Domains = cur.Generation, cur.Serial, cur.Domains
	f.rec.NotBefore, f.rec.NotAfter = cur.NotBefore, cur.NotAfter
	f.rec.Publisher, f.rec.Published = cur.Publisher, cur.Published
	if l.fleetHas() || l.otherNames(cur.Domains) {
		return false, nil
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
	if err == nil {
		err = l.checkFleetNumber(cur.Generation, cur.Serial)
	}
	if err == nil {
		err = l.checkFleetCert(v)
	}
	if err != nil {
		return false, &ending{outcome: Failed, nextCheck: l.r.now().Add(localRetryWait),
			err: fmt.Errorf("%s: not installing the fleet's generation %d (serial %s, published by %s); the installed certificate is still served: %w",
				l.c.Name, cur.Generation, cur.Serial, orNone(cur.Publisher), err)}
	}
	l.log.Info("installing the fleet's current generation", "fleet_generation", cur.Generation, "serial", cur.Serial, "publisher", cur.Publisher)
	if end := l.install(ctx, v, key, cur.Generation); end != nil {
		return false, end
	}
	return true, nil
}

// localNewer reports whether the generation installed here, for the
// configured names, must be published rather than replaced by the fleet's
// current one (see adopt). It must not expire before the fleet's current
// one, and either the fleet had it after its current one (the fleet went
// back), or it expires after the fleet's current one while that
// one is due (it was installed outside the fleet: the CLI's -no-fleet
// escape hatch during an etcd outage, an order journaled before fleet
// mode). A fleet generation that is not due is installed even over a newer
// one, so that nodes joining with certificates of their own reload once.
func (l *lineage) localNewer() bool {
	g, f := l.st.Current, l.fleet
	if g == nil || f.rec.Generation == 0 || g.Serial == f.rec.Serial || !sameRequest(l.c, g) {
		return false
	}
	if l.otherNames(f.rec.Domains) {
		// Never published over a generation for other names without an
		// order: nodes not all configured with the same names would
		// otherwise republish their own, in turn, for ever (see Fleet).
		return false
	}
	if g.NotAfter.Before(f.rec.NotAfter) {
		// Whatever the numbers say, the fleet's certificate is newer than
		// this one: after its records were deleted or restored, a node
		// that lagged behind installs it rather than publish its older
		// one over it.
		return false
	}
	if l.fleetAccepted() > f.rec.Generation {
		// The fleet went back (etcd restored from an older backup, or a
		// replayed record) to a certificate no newer than this one: this
		// node does not follow it back but publishes what it has.
		return true
	}
	if !g.NotAfter.After(f.rec.NotAfter) {
		return false
	}
	p := l.c.Policy
	if p == nil {
		p = expiry.DefaultPolicy()
	}
	return expiry.DecideAt(l.now, expiry.Validity{NotBefore: f.rec.NotBefore, NotAfter: f.rec.NotAfter}, p, nil, time.Time{}).Due
}

// otherNames reports whether names (of the fleet's generation or of a
// journaled order) are not the configured ones: the lineage's names were
// changed since it was written. Unknown names (empty) are not other names.
func (l *lineage) otherNames(names []string) bool {
	return len(names) != 0 && !slices.Equal(normDomains(names), normDomains(l.c.Domains))
}

// fleetOrder is the order the fleet journals for the configured names (nil
// if none, or for other names: see fleetGate).
func (l *lineage) fleetOrder() *InFlight {
	if o := l.fleet.rec.Order; o != nil && !l.otherNames(o.Domains) {
		return o
	}
	return nil
}

// fleetHas reports whether the generation installed here is the fleet's
// current one (f.rec), recording the fleet's number of it in the state.
func (l *lineage) fleetHas() bool {
	g, f := l.st.Current, l.fleet
	if g == nil || g.Serial != f.rec.Serial {
		return false
	}
	if f.rec.Generation >= l.fleetAccepted() {
		// (A lower number for this very certificate: the fleet went back
		// to it; the number remembered stays.)
		g.FleetGen = f.rec.Generation
		l.acceptFleet(g.FleetGen)
	}
	return true
}

// fleetGate is steps e to h once the decision is made (due): it ends the
// run (not due, backing off, the lock held elsewhere, the fleet changed
// under the lock, a journaled order finished, an adoption) or returns nil
// with the fleet lock held and the record re-read, for this run to order.
func (l *lineage) fleetGate(ctx context.Context, due, installed bool) *ending {
	f := l.fleet
	notDue := &ending{outcome: NotDue}
	if installed {
		notDue.outcome = Recovered
	}
	// Adoption: a fleet without a generation, or with an older one than
	// this node's (see localNewer), takes this node's valid one.
	adopt := !due && l.st.Current != nil && (f.rec.Generation == 0 || l.localNewer())
	if !due && !adopt && l.fleetOrder() == nil {
		return notDue
	}
	// (f) A journaled order is finished (never a wasted issuance) even
	// when the lineage is not due here, unless the fleet backs off.
	if due || l.fleetOrder() != nil {
		if e := l.fleetBackingOff(); e != nil {
			return e
		}
	}
	// (g) A node that cannot order (a busy port, DNS credentials missing)
	// finds out before it takes the fleet lock: it holds no other node
	// back, and wakes no other node's watch, for a failure of its own.
	if due && l.fleetOrder() == nil {
		if e := l.preflight(ctx); e != nil {
			return e
		}
		f.preflighted = true
	}
	if err := ctx.Err(); err != nil {
		e := l.interrupted(err)
		return &e
	}
	lock, err := l.r.Fleet.Lock(ctx, l.c)
	if err != nil {
		if errors.Is(err, lockfile.ErrLocked) {
			res := l.r.locked(l.c, err, l.r.now())
			l.held = &res
			return &ending{outcome: res.Outcome, err: res.Err}
		}
		return l.deferred(ctx, err)
	}
	f.lock = lock
	// (h)
	cur, err := lock.Record(ctx)
	if err != nil {
		return l.deferred(ctx, err)
	}
	if cur.Err != nil {
		return l.badRecord(cur.Err)
	}
	if (cur.Generation != f.rec.Generation || cur.Serial != f.rec.Serial) && !l.otherNames(cur.Domains) {
		// Another node published since the view: install that; order
		// nothing. (A generation for other names is replaced below.)
		l.log.Debug("the fleet changed since the view", "fleet_generation", cur.Generation)
		f.rec = cur
		synced, end := l.fleetSync(ctx)
		if end != nil {
			return end
		}
		if synced || installed {
			return &ending{outcome: Recovered}
		}
		return &ending{outcome: NotDue}
	}
	f.rec = cur
	if o := cur.Order; o != nil && l.otherNames(o.Domains) && due {
		// Placed before the lineage's names were changed: its certificate
		// could not be installed. Dropped, and ordered anew for the
		// configured names.
		l.log.Info("the fleet's journaled order is for other names; dropping it and ordering for the configured names", "order", o.OrderURL, "order_names", o.Domains, "placed_by", cur.OrderNode)
		l.fleetDropOrder(ctx)
	}
	if l.fleetOrder() != nil {
		if e := l.fleetBackingOff(); e != nil {
			return e
		}
		done, end := l.fleetResume(ctx)
		if end != nil {
			return end
		}
		if done {
			return &ending{outcome: Recovered}
		}
	}
	if adopt {
		return l.adopt(ctx)
	}
	if !due {
		return notDue
	}
	return l.fleetBackingOff()
}

// fleetBackingOff is the gate of the fleet's cross-run backoff (as step 6
// is the local one): nil when the run may go on.
func (l *lineage) fleetBackingOff() *ending {
	f := l.fleet
	if l.c.Force || !l.now.Before(f.rec.RetryNotBefore) {
		return nil
	}
	if h := l.c.configHash(); f.rec.FailedConfig != "" && f.rec.FailedConfig != h {
		l.log.Info("configuration changed since the fleet's last failure; not backing off", "retry_not_before", f.rec.RetryNotBefore)
		return nil
	}
	e := l.backOffUntil(f.rec.RetryNotBefore, f.rec.Failures, f.rec.LastError, " in the fleet")
	return &e
}

// fleetResume finishes the order journaled in the fleet (step h), with
// the key journaled with it, through the same resume as a local order.
// It reports whether it installed the certificate; false with a nil
// ending when the order is gone (dropped: the run may order anew).
func (l *lineage) fleetResume(ctx context.Context) (bool, *ending) {
	f := l.fleet
	o := *f.rec.Order
	o.Name = l.c.Name
	key, err := parseKey(f.rec.OrderKey)
	if err != nil {
		l.log.Warn("the fleet's journaled order has no usable key; dropping it", "order", o.OrderURL, "error", err)
		l.fleetDropOrder(ctx)
		return false, nil
	}
	l.log.Info("finishing the order journaled in the fleet", "order", o.OrderURL, "placed_by", f.rec.OrderNode)
	l.order = &pendingOrder{rec: o, key: key, fleet: true}
	return l.resume(ctx)
}

// fleetJournal is the order journal in fleet mode (step i): the order and
// its key go to the fleet, under the lock, before finalize.
func (l *lineage) fleetJournal(ctx context.Context, rec InFlight, key crypto.Signer, keyPEM []byte) error {
	f := l.fleet
	if err := f.lock.Journal(ctx, rec, keyPEM); err != nil {
		return backoff.Permanent(fmt.Errorf("journal order %s: %w: %w", rec.OrderURL, errFleetJournal, err))
	}
	crashpoint.Hit("fleet", "journaled")
	rec.Name = l.c.Name
	l.order = &pendingOrder{rec: rec, key: key, fleet: true}
	f.rec.Order = &rec
	return nil
}

// fleetDropOrder forgets the order journaled in the fleet.
func (l *lineage) fleetDropOrder(ctx context.Context) {
	f := l.fleet
	if f == nil || f.lock == nil {
		return
	}
	if err := f.lock.DropOrder(ctx); err != nil {
		l.log.Warn("could not drop the fleet's order journal", "error", err)
		return
	}
	f.rec.Order, f.rec.OrderKey, f.rec.OrderNode = nil, nil, ""
}

// publish is step j: the verified certificate becomes the fleet's next
// generation before anything is installed here. A failure (the lock lost:
// fenced) installs nothing and is not counted; the order stays journaled
// in the fleet for the next holder of the lock.
func (l *lineage) publish(ctx context.Context, v *verified, key crypto.Signer) *ending {
	f := l.fleet
	keyPEM, err := encodeKey(key)
	if err != nil {
		e := l.fail(fmt.Errorf("%s: %w", l.c.Name, err))
		return &e
	}
	g := f.next(l.c.Name, l.fleetAccepted(), v.leaf, encodeChain([]*x509.Certificate{v.leaf}), encodeChain(v.chain), keyPEM)
	if err := f.lock.Publish(ctx, g); err != nil {
		if ctx.Err() != nil {
			e := l.interrupted(err)
			return &e
		}
		return &ending{outcome: Failed, nextCheck: l.r.now().Add(fleetRetryWait),
			err: fmt.Errorf("%s: publish generation %d to the fleet: %w (nothing installed here: this node lost the fleet lock; its holder finishes the journaled order, if it has not already, and the next run installs the fleet's generation)", l.c.Name, g.Generation, err)}
	}
	crashpoint.Hit("fleet", "published")
	f.published = true
	f.setCurrent(g)
	// Publish cleared the fleet's order journal in the same write.
	if l.order != nil && l.order.fleet {
		l.order = nil
	}
	l.log.Info("published to the fleet", "fleet_generation", g.Generation, "serial", g.Serial)
	return nil
}

// adopt publishes the generation installed here as the fleet's next
// without an order: the lineage is not due here and the fleet has none
// (forming a fleet from nodes that already have a certificate: it becomes
// generation 1) or an older one (localNewer).
func (l *lineage) adopt(ctx context.Context) *ending {
	f := l.fleet
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
	g := f.next(l.c.Name, l.fleetAccepted(), leaf, files.Cert, files.Chain, files.Key)
	if err := f.lock.Publish(ctx, g); err != nil {
		return l.deferred(ctx, fmt.Errorf("publish the installed generation as the fleet's generation %d: %w", g.Generation, err))
	}
	f.setCurrent(g)
	l.fleetHas()
	l.acceptFleet(g.Generation)
	l.log.Info("published the installed generation to the fleet (adoption)", "fleet_generation", g.Generation, "serial", g.Serial)
	return &ending{outcome: NotDue}
}

// fleetCounting returns the fleet run whose backoff a failed attempt
// counts in (the fleet lock is held and nothing was published yet), or
// nil: then the failure is only this node's.
func (l *lineage) fleetCounting() *fleetRun {
	if f := l.fleet; f != nil && f.lock != nil && !f.published {
		return f
	}
	return nil
}

// fleetFail mirrors the failed attempt just recorded in the local state to
// the fleet's backoff (step l), so that every node waits.
func (l *lineage) fleetFail(ctx context.Context, f *fleetRun) {
	b := FleetRecord{
		Name:           l.c.Name,
		Failures:       l.st.Failures,
		RetryNotBefore: l.st.RetryNotBefore,
		LastError:      l.st.LastError,
		FailedConfig:   l.st.FailedConfig,
	}
	if err := f.lock.Fail(ctx, b); err != nil {
		l.log.Warn("could not record the failure in the fleet; other nodes may try before the backoff ends", "error", err)
		return
	}
	f.rec.Failures, f.rec.RetryNotBefore, f.rec.LastError, f.rec.FailedConfig = b.Failures, b.RetryNotBefore, b.LastError, b.FailedConfig
}

// fleetUnlock releases the fleet lock, if taken (step m).
func (l *lineage) fleetUnlock() {
	if f := l.fleet; f != nil && f.lock != nil {
		if err := f.lock.Unlock(); err != nil {
			l.log.Warn("releasing the fleet lock", "error", err)
		}
	}
}

// next is the record that publishes leaf (with the PEM of its certificate,
// chain and key) as the fleet's next generation: numbered above the
// fleet's and above accepted, the highest this node accepted (after a
// restore of the fleet from a backup, every node accepts it).
func (f *fleetRun) next(name string, accepted uint64, leaf *x509.Certificate, cert, chain, key []byte) FleetRecord {
	return FleetRecord{
		Name:       name,
		Generation: max(f.rec.Generation, accepted) + 1,
		Serial:     serialHex(leaf.SerialNumber),
		Domains:    leafNames(leaf),
		NotBefore:  leaf.NotBefore,
		NotAfter:   leaf.NotAfter,
		Cert:       cert,
		Chain:      chain,
		Key:        key,
	}
}

// setCurrent records that g was published: the fleet's current generation,
// with its order journal and backoff cleared (Publish clears them in the
// same write).
func (f *fleetRun) setCurrent(g FleetRecord) {
	f.rec.Generation, f.rec.Serial, f.rec.NotBefore, f.rec.NotAfter = g.Generation, g.Serial, g.NotBefore, g.NotAfter
	f.rec.Domains = g.Domains
	f.rec.Order, f.rec.OrderKey, f.rec.OrderNode = nil, nil, ""
	f.rec.Failures, f.rec.RetryNotBefore, f.rec.LastError, f.rec.FailedConfig = 0, time.Time{}, "", ""
}

// fill completes res with what the fleet says: the fleet's number of the
// installed generation and the fleet's backoff.
func (f *fleetRun) fill(res *Result, st *state) {
	if g := st.Current; g != nil {
		res.FleetGeneration = g.FleetGen
		if g.Serial == f.rec.Serial {
			res.FleetGeneration = f.rec.Generation
		}
	}
	if f.rec.Failures > res.Failures {
		res.Failures = f.rec.Failures
	}
	res.RetryNotBefore = latest(res.RetryNotBefore, f.rec.RetryNotBefore)
}
