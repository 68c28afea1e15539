package renew

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/internal/safefile"
)

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
	k, err := l.c.KeyType.Generate()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.c.Name, err)
	}
	return k, nil
}

// obtain orders a certificate with in-run retries (step 8).
func (l *lineage) obtain(ctx context.Context, key crypto.Signer, keyPEM []byte) (*Issued, error) {
	req := IssueRequest{Name: l.c.Name, Domains: canonicalNames(l.c.Domains), Key: key, Profile: l.c.Profile}
	if _, ok := l.r.Issuer.(RenewalInfoer); ok && l.st.Current != nil && sameRequest(l.c, l.st.Current) {
		if leaf, err := l.currentLeaf(); err == nil {
			req.Replaces = leaf
		}
	}
	journal := func(ctx context.Context, rec InFlight) error {
		return l.co.journal(ctx, l, rec, key, keyPEM)
	}
	var iss *Issued
	opts := []backoff.Option{backoff.WithNotify(func(a backoff.Attempt) {
		if a.Number == 1 {
			// The first retry says what is happening, for how long the
			// run keeps trying, and (the CA out of reach) what to check:
			// a run against a CA that is down must not look like a hang.
			attrs := []any{"attempt", a.Number, "retry_in", a.Wait,
				"attempts_left", l.r.Retry.MaxAttempts() - a.Number, "waits_at_most", l.r.Retry.Budget(),
				"then", "the run fails and later runs back off"}
			if unreachable(a.Err) {
				attrs = append(attrs, "cause", "the CA cannot be reached",
					"fix", "check the server URL, this machine's network and DNS, and any proxy it must use (HTTPS_PROXY)")
			}
			l.log.Warn("issuance attempt failed", append(attrs, "error", a.Err)...)
			return
		}
		l.log.Warn("issuance attempt failed", "attempt", a.Number, "retry_in", a.Wait, "error", a.Err)
	})}
	err := backoff.Do(ctx, l.r.Retry, func(ctx context.Context) error {
		l.attempts++
		if l.order != nil {
			// An earlier attempt of this run journaled an order: finish
			// it (finalizing it if its finalize never reached the CA)
			// rather than ordering again.
			if rs, ok := l.r.Issuer.(Resumer); ok {
				got, err := rs.Resume(ctx, l.resumable(l.order))
				if err == nil {
					iss = got
					return nil
				}
				if !errors.Is(err, ErrOrderGone) {
					return err
				}
				l.dropOrder(ctx)
			}
		}
		got, err := l.r.Issuer.Issue(ctx, req, journal)
		if err != nil {
			return err
		}
		iss = got
		return nil
	}, opts...)
	if err != nil {
		return nil, err
	}
	return iss, nil
}

// dropOrder forgets the journaled order and its key, in the journal that
// holds it (pending.key when none is known: an unusable one).
func (l *lineage) dropOrder(ctx context.Context) {
	o := l.order
	l.order = nil
	if o != nil && o.in != nil {
		o.in.dropOrder(ctx, l)
		return
	}
	localRun{}.dropOrder(ctx, l)
}

// currentLeaf parses the installed certificate.
func (l *lineage) currentLeaf() (*x509.Certificate, error) {
	cur, err := l.store.Current()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cur.Dir, atomicfs.CertFile)
	data, err := safefile.ReadFile(path, safefile.MaxFileSize) // 1 MiB, as the Store reads generation files
	if err != nil {
		return nil, err
	}
	chain, err := expiry.ParseChain(path, data)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

// unreachable reports whether err says that no answer came from the CA
// (a refused or reset connection, a name that does not resolve, a
// timeout) rather than an error answer.
func unreachable(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}
