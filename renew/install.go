package renew

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/crashpoint"
	"github.com/renewkit/renewkit/internal/pubkey"
)

// install runs steps 11 to 16 for a verified certificate and returns nil,
// or how the run ended: the one local install of a certificate, whether
// the CA issued it to this run or it is the fleet's current generation
// (fleetGen, 0 outside fleet mode, is recorded with it). How a failure to
// write the generation (a full disk, mostly) ends the run is the
// coordinator's (installFailed); the order journal is kept either way.
func (l *lineage) install(ctx context.Context, v *verified, key crypto.Signer, fleetGen uint64) *ending {
	// (11)
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
		e := l.co.installFailed(ctx, l, err, fleetGen)
		return &e
	}
	crashpoint.Hit("renew", "run:11")
	if err := l.commit(ctx, gen, v.leaf, key, fleetGen); err != nil {
		e := l.fail(err)
		return &e
	}
	return nil
}

// installIssued installs a certificate the CA issued to this lineage
// (ordered or resumed): step 10 (co.publish: in fleet mode, under the
// fleet lock, it becomes the fleet's next generation first), then steps 11
// to 16 once that succeeded.
func (l *lineage) installIssued(ctx context.Context, v *verified, key crypto.Signer) *ending {
	fleetGen, end := l.co.publish(ctx, l, v, key)
	if end != nil {
		return end
	}
	return l.install(ctx, v, key, fleetGen)
}

// commit runs steps 12 to 16 for a complete, verified generation: prune,
// journal its hooks, drop the order journal, make it current, run the
// hooks. key is the generation's private key, which tells whether it
// holds the journaled order's certificate, and fleetGen is its number in
// the fleet (0 outside fleet mode).
func (l *lineage) commit(ctx context.Context, gen atomicfs.Generation, leaf *x509.Certificate, key crypto.Signer, fleetGen uint64) error {
	info := &genInfo{
		Seq:       gen.Seq,
		Serial:    serialHex(leaf.SerialNumber),
		Domains:   leafNames(leaf),
		KeyType:   keyTypeOf(leaf.PublicKey),
		Profile:   l.c.Profile,
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		FleetGen:  fleetGen,
	}
	info.stamp(gen.Dir)
	// (12)
	if pruned, err := l.store.Prune(l.r.keep()); err != nil {
		l.log.Warn("prune failed", "error", err)
	} else if len(pruned) > 0 {
		l.log.Debug("pruned", "generations", len(pruned))
	}
	crashpoint.Hit("renew", "run:12")
	// (13) One state write journals the hooks, records the generation and
	// the success it will be once current; a crash before (14) is rolled
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
	l.st.LastErrorPermanent = false
	l.st.FailedConfig = ""
	l.st.LastOutcome = Renewed
	l.st.ARI = nil
	if err := l.save(); err != nil {
		return err
	}
	crashpoint.Hit("renew", "run:13")
	// The order journal is done with: state.json now names its order as
	// installed (and this generation newer than current, for a roll
	// forward). The removal becomes durable with the swap's fsync below;
	// should it be lost, the next run recognises the order and removes it.
	if holdsOrder {
		l.dropOrder(ctx)
	}
	// (14)
	if err := l.store.Activate(gen); err != nil {
		return fmt.Errorf("%s: activate generation %d: %w", l.c.Name, gen.Seq, err)
	}
	crashpoint.Hit("renew", "run:14")
	l.log.Info("installed", "generation", gen.Seq, "serial", info.Serial, "not_after", leaf.NotAfter)
	// (15)
	l.runHooks(ctx)
	// (16) Save what the hooks changed, without the fsync of the lineage
	// directory: the swap is durable already (Activate fsynced it), and a
	// hook success a power loss takes back is run again, which at-least-
	// once delivery allows (the power-loss suite: nothing fails without it).
	if l.changed() {
		if err := l.st.saveNoDirSync(l.dir); err != nil {
			return fmt.Errorf("%s: %w", l.c.Name, err)
		}
		l.markSaved()
	}
	crashpoint.Hit("renew", "run:16")
	return nil
}

// sameKey reports whether a and b are the same key pair.
func sameKey(a, b crypto.Signer) bool { return pubkey.Equal(a.Public(), b.Public()) }

// runHooks replays the hook journal (step 15 and recovery). A hook's
// success is saved with the next state write rather than one of its own:
// should the process die before that, the hook runs again, which at-least-
// once delivery allows (hooks are idempotent), and a renewal saves two
// fsyncs per hook.
func (l *lineage) runHooks(ctx context.Context) {
	if l.st.Hooks.PendingCount() == 0 {
		return
	}
	persist := func(*hooks.Journal) error {
		crashpoint.Hit("renew", "run:15:hook")
		return nil
	}
	hctx, cancel := l.r.hookContext(ctx)
	defer cancel()
	if err := l.st.Hooks.Replay(hctx, l.c.Hooks, persist, l.log); err != nil {
		l.hookErr = fmt.Errorf("%s: %w", l.c.Name, err)
	}
}

func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf("%x", n)
}
