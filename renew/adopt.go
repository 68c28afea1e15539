package renew

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/lockfile"
)

// Existing is a certificate obtained by other means (another ACME client,
// a manual order) that a lineage takes over with Renewer.Adopt. Every
// field is PEM, as such clients write it.
type Existing struct {
	// Cert is the certificate: the leaf first, optionally followed by its
	// chain (a fullchain file is fine).
	Cert []byte
	// Chain is the chain after the leaf, issuer first; empty when Cert
	// holds it or the leaf is signed by a root directly.
	Chain []byte
	// Key is the certificate's private key (PKCS #8, PKCS #1 or SEC 1). It
	// never appears in errors or logs.
	Key []byte
}

// Adopt makes e the first generation of c's lineage without contacting the
// CA: the way to take over certificates another client issued, so that
// the next order happens when it is due (c.Policy, or the CA's ARI window)
// rather than on the day of the switch. It does not use the Issuer, and
// fleet mode is not supported (an ErrConfig Result): adopt on one node,
// then let the fleet take it from there.
//
// The certificate is checked as an issued one is (the package
// documentation's step 8): it parses, its key is e.Key, it covers exactly
// c.Domains, its chain is signed link by link (and verifies to Roots when
// set), it is valid now; and its key is of type c.KeyType (the default,
// EC256, when empty), since another type would make the next run renew at
// once. A failure is a Failed Result, and nothing is written.
//
// Under the lineage's lock (held: Locked), Adopt recovers what a killed run
// left, then:
//
//  1. the lineage already holds e's certificate (a second Adopt, or one
//     killed after writing the generation): Adopted again, nothing
//     changes but what recovery finishes;
//  2. it holds another certificate, or an order journal of its own:
//     Failed, with an Err matching fs.ErrExist (adoption only ever makes a
//     lineage's first generation), and nothing changes;
//  3. otherwise e is installed by steps 9 to 14 of a renewal: a new
//     generation written and fsynced, the deploy hooks journaled in
//     state.json, current swapped to it, the hooks run (a hook that fails
//     or is killed is replayed by the next run, as after a renewal).
//
// A process killed during Adopt leaves the lineage as a killed renewal
// does: the next Run or Adopt finishes or rolls back what it began. A
// generation written but not journaled holds e's certificate, which the
// next Adopt of e recognises and makes current; Run does not (it is
// nobody's order), so adopt again before the lineage is run.
//
// The Result's Outcome is Adopted on success; Issued and Attempts are 0.
func (r *Renewer) Adopt(ctx context.Context, c Certificate, e Existing) Result {
	now := r.now()
	if err := r.check(false); err != nil {
		return Result{Name: c.Name, Outcome: Failed, Err: err}
	}
	if r.Fleet != nil {
		return Result{Name: c.Name, Outcome: Failed, Err: fmt.Errorf("%w: Adopt does not support fleet mode (adopt on one node without Fleet set)", ErrConfig)}
	}
	if err := c.validate(); err != nil {
		return Result{Name: c.Name, Outcome: Failed, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return Result{Name: c.Name, Outcome: Interrupted, Err: fmt.Errorf("%s: interrupted: %w", c.Name, err)}
	}
	v, err := r.verifyExisting(c, e, now)
	if err != nil {
		return Result{Name: c.Name, Outcome: Failed, Err: err}
	}

	dir := r.lineageDir(c.Name)
	store, err := atomicfs.Open(dir, r.Modes)
	if err != nil {
		return Result{Name: c.Name, Outcome: Failed, Err: fmt.Errorf("%s: %w", c.Name, localDirError("lineage directory", dir, err))}
	}
	lock, err := lockfile.TryLock(filepath.Join(dir, atomicfs.LockFile))
	if err != nil {
		if errors.Is(err, lockfile.ErrLocked) {
			res := r.locked(c, err, now)
			res.Name = c.Name
			return res
		}
		return Result{Name: c.Name, Outcome: Failed, Err: fmt.Errorf("%s: lock: %w", c.Name, localDirError("lineage directory", dir, err))}
	}
	l := &lineage{r: r, c: c, dir: dir, store: store, log: r.logger().With("name", c.Name), now: now, co: localRun{}, adopting: v.leaf}
	defer func() {
		if err := lock.Unlock(); err != nil {
			l.log.Warn("releasing the lineage lock", "error", err)
		}
	}()
	st, err := loadState(dir)
	switch {
	case errors.Is(err, errStateCorrupt):
		l.log.Warn("state unusable; rebuilding it from the installed generation", "error", err)
	case err != nil:
		return Result{Name: c.Name, Outcome: Failed, Err: fmt.Errorf("%s: %w", c.Name, err)}
	}
	l.st = st
	if err == nil && !st.loose {
		l.saved, _ = st.encode()
	}
	var res Result
	end := l.adoptExisting(ctx, v, e)
	l.finish(&res, end)
	res.Name = c.Name
	if res.Outcome == Adopted && l.st.Current != nil {
		d := decide(r.now(), c, l.st)
		fill(&res, l.st, &d)
	}
	return res
}

// VerifyExisting checks e for c as Adopt does before it writes anything
// (see Adopt), and writes nothing: a dry run of an adoption. The error
// names c and what failed; it never includes key material.
func (r *Renewer) VerifyExisting(c Certificate, e Existing) error {
	if err := c.validate(); err != nil {
		return err
	}
	_, err := r.verifyExisting(c, e, r.now())
	return err
}

// verifyExisting is VerifyExisting's check, returning the verified
// certificate.
func (r *Renewer) verifyExisting(c Certificate, e Existing, now time.Time) (*verified, error) {
	key, err := parseKey(e.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: private key: %w", errVerify, c.Name, err)
	}
	v, err := verify(c.Name, e.Cert, e.Chain, key, c.Domains, r.Roots, now)
	if err != nil {
		return nil, err
	}
	if got, want := keyTypeOf(key.Public()), c.KeyType.orDefault(); got != want {
		return nil, fmt.Errorf("%w: %s: the key is %s, but the certificate is configured for %s (set KeyType to %q)", errVerify, c.Name, orUnknown(got), want, string(got))
	}
	return v, nil
}

// adoptExisting is Adopt's work under the lock: recovery, then steps 1 to 3 of
// Adopt's documentation.
func (l *lineage) adoptExisting(ctx context.Context, v *verified, e Existing) ending {
	// An order journal is this lineage's own order: recovery would resume
	// it (or, without an Issuer that can, drop it and waste an issuance).
	if _, err := l.store.PendingKey(); !errors.Is(err, fs.ErrNotExist) {
		return ending{outcome: Failed, err: fmt.Errorf("%s: %w: the lineage has an order of its own journaled (pending.key); run it instead of adopting", l.c.Name, fs.ErrExist)}
	}
	if _, end := l.recover(ctx); end != nil {
		return *end
	}
	serial := serialHex(v.leaf.SerialNumber)
	// (1), (2)
	if cur := l.st.Current; cur != nil {
		if cur.Serial == serial {
			l.st.LastOutcome = Adopted
			return ending{outcome: Adopted}
		}
		return ending{outcome: Failed, err: fmt.Errorf("%s: %w: the lineage holds another certificate (generation %d, serial %s), not the adopted %s", l.c.Name, fs.ErrExist, cur.Seq, cur.Serial, serial)}
	}
	if err := ctx.Err(); err != nil {
		return l.interrupted(err)
	}
	// (3)
	key, err := parseKey(e.Key)
	if err != nil { // parsed in Adopt already
		return l.fail(fmt.Errorf("%s: private key: %w", l.c.Name, err))
	}
	if end := l.install(ctx, v, key, 0); end != nil {
		return *end
	}
	l.st.LastOutcome = Adopted
	l.log.Info("adopted an existing certificate", "serial", serial, "not_after", v.leaf.NotAfter)
	return ending{outcome: Adopted}
}

// adoptedVouches reports whether leaf is the certificate an Adopt of this
// run is adopting: a generation holding it was written by an earlier Adopt
// of the same certificate that was killed before its journal.
func (l *lineage) adoptedVouches(leaf *x509.Certificate) bool {
	return l.adopting != nil && l.adopting.Equal(leaf)
}

func orUnknown(k KeyType) string {
	if k == "" {
		return "of an unsupported type"
	}
	return string(k)
}
