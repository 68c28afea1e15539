package renew

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/internal/crashpoint"
	"github.com/renewkit/renewkit/internal/safefile"
)

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
	crashpoint.Hit("renew", "run:4")
	for _, u := range rep.Untrusted {
		l.log.Error("not rolling forward a generation another user could have written", "generation", u.Seq, "error", u.Err)
	}
	// What state.json journaled (step 13) before syncCurrent aligns it with
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
		l.dropOrder(ctx)
	}
	if err == nil {
		o, err := decodePending(data)
		switch {
		case err != nil:
			l.log.Warn("removing an unusable order journal", "error", err)
			l.dropOrder(ctx)
		case o.rec.OrderURL == l.st.LastOrder:
			l.dropOrder(ctx) // installed already; only its removal was lost
		default:
			o.rec.Name = l.c.Name
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
		var fleetGen uint64 // the fleet's number, as journaled with it
		serial := serialHex(leaf.SerialNumber)
		if journaled != nil && journaled.Seq == g.Seq && journaled.Serial == serial {
			fleetGen = journaled.FleetGen
		} else if n, ok := l.co.vouches(serial); ok {
			fleetGen = n
		}
		if err := l.commit(ctx, g, leaf, key, fleetGen); err != nil {
			return fail(err)
		}
		out.installed = true
		break
	}
	// Finish an order a killed run journaled but did not install, unless
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
				// The order waits for a later run; the generation already
				// served still gets its reload now, not then.
				if err := l.replayPending(ctx); err != nil {
					l.log.Error("saving the hook journal", "error", err)
				}
				return out, end
			}
			interrupted = end
			out.installed = out.installed || installed
		}
	}
	if err := l.replayPending(ctx); err != nil {
		return fail(err)
	}
	return out, interrupted
}

// replayPending replays hooks a killed run left pending, and saves at once:
// a run that is itself killed later (while ordering, say) must not replay
// them again on every start.
func (l *lineage) replayPending(ctx context.Context) error {
	if l.st.Hooks.PendingCount() == 0 {
		return nil
	}
	l.runHooks(ctx)
	return l.save()
}

// vouched reports whether generation g (its verified leaf and key) is one a
// renewal of this lineage installed: a generation is written (step 11) while
// the order journal holds its key, and state.json names it (step 13) before
// the order journal is dropped, so a killed run's generation always has one
// of the two; the coordinator may vouch for it too (fleet: the fleet's
// current certificate). Anything else in generations/ was put there by someone else,
// however self-consistent, and is never served (invariant 7).
func (l *lineage) vouched(g atomicfs.Generation, journaled *genInfo, leaf *x509.Certificate, key crypto.Signer) bool {
	if journaled != nil && journaled.Seq == g.Seq && journaled.Serial == serialHex(leaf.SerialNumber) {
		return true
	}
	// The order's key, and the names it was placed for, as resume checks.
	if l.order != nil && sameKey(l.order.key, key) && slices.Equal(normDomains(l.order.rec.Domains), leafNames(leaf)) {
		return true
	}
	// The certificate an Adopt is adopting (an earlier Adopt of it was
	// killed between writing the generation and journaling it).
	if l.adoptedVouches(leaf) {
		return true
	}
	_, ok := l.co.vouches(serialHex(leaf.SerialNumber))
	return ok
}

// resume installs the certificate of an order a killed run journaled and
// reports whether it did; a non-nil ending ends the run.
func (l *lineage) resume(ctx context.Context) (bool, *ending) {
	o := l.order
	rs, ok := l.r.Issuer.(Resumer)
	if !ok {
		l.log.Warn("issuer cannot resume orders; ordering anew", "order", o.rec.OrderURL)
		l.dropOrder(ctx)
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		e := l.interrupted(err)
		return false, &e
	}
	l.log.Info("resuming an order a killed run journaled", "order", o.rec.OrderURL)
	var iss *Issued
	err := backoff.Do(ctx, l.r.Retry, func(ctx context.Context) error {
		l.attempts++
		got, err := rs.Resume(ctx, l.resumable(o))
		if errors.Is(err, ErrOrderGone) {
			return backoff.Permanent(err)
		}
		iss = got
		return err
	})
	if errors.Is(err, ErrOrderGone) {
		l.log.Warn("journaled order is gone; ordering anew", "order", o.rec.OrderURL, "error", err)
		l.dropOrder(ctx)
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
			l.dropOrder(ctx)
		}
		e := l.failAttempt(ctx, err)
		return false, &e
	}
	if end := l.installIssued(ctx, v, o.key); end != nil {
		return false, end
	}
	l.issued = 1
	return true, nil
}

// resumable returns o's record as handed to Resumer.Resume: with the
// order's key when the order is for what the lineage requests now (its
// names and key type), so that an order still ready (its finalize never
// reached the CA, or the process that journaled it is paused) is finalized
// with it rather than replaced by a second order; one for something else is
// not finalized (Resume reports it gone) and the run orders what is
// configured.
func (l *lineage) resumable(o *pendingOrder) InFlight {
	rec := o.rec
	rec.Name = l.c.Name
	if slices.Equal(normDomains(rec.Domains), normDomains(l.c.Domains)) && keyTypeOf(o.key.Public()) == l.c.KeyType.orDefault() {
		rec.Key = o.key
	}
	return rec
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
		return safefile.ReadFile(filepath.Join(dir, name), safefile.MaxFileSize)
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
		l.st.Current = nil
		return
	}
	if l.st.Current != nil && l.st.Current.Seq == cur.Seq && l.st.Current.intact(l.dir) {
		return
	}
	leaf, _, ok := l.verifyGeneration(cur)
	if !ok {
		l.log.Warn("installed certificate unusable; the lineage is due", "generation", cur.Seq)
		l.st.Current = nil
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
}
