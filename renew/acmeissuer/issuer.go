package acmeissuer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	legolog "github.com/go-acme/lego/v5/log"

	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/safefile"
	"github.com/renewkit/renewkit/renew"
)

// Compile-time checks: the interfaces renew consumes.
var (
	_ renew.Issuer        = (*Issuer)(nil)
	_ renew.Resumer       = (*Issuer)(nil)
	_ renew.RenewalInfoer = (*Issuer)(nil)
)

// Issuer obtains certificates from an ACME CA. It is safe for concurrent use
// by several goroutines issuing different certificates; all of them share
// one account, one API client and the challenge listeners. Create it with
// [New] and release its listeners with [Issuer.Close].
type Issuer struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	initSem chan struct{} // guards core and anon; a channel so that waiting honours ctx
	core    *api.Core     // bound to the account, created on first use
	anon    *api.Core     // for ARI before the account is needed

	def     *route            // the default challenges; nil if none
	routes  map[string]*route // Config.Routes, by certificate name
	servers []*lazyServer     // every built-in challenge listener
	tokens  *tokenStore       // HTTP-01 tokens of every route

	ours ourValues // DNS-01 values presented, for messages

	closeOnce   sync.Once
	closeCtx    context.Context // parent of background clean-up; cancelled by Close
	closeCancel context.CancelFunc
	bgMu        sync.Mutex // orders bg.Add against Close's bg.Wait
	bgClosed    bool
	bg          sync.WaitGroup

	// afterFinalize, if set (by tests only), is called right after a
	// finalize request returned successfully.
	afterFinalize func()
}

// New validates cfg and returns an Issuer. It creates cfg.AccountDir (0700)
// if missing but does not talk to the CA: the account is loaded, found or
// registered on the first call that needs it (see [Issuer.Connect]), so a
// run with nothing to renew costs no request. Errors wrap [renew.ErrConfig]; an
// AccountDir that its group or others can write, or that another user owns,
// is refused with an error that also matches atomicfs.ErrInsecure.
func New(ctx context.Context, cfg Config) (*Issuer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := makeAccountDir(cfg.AccountDir); err != nil {
		return nil, err
	}
	i := &Issuer{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     time.Now,
		initSem: make(chan struct{}, 1),
		tokens:  &tokenStore{},
	}
	i.closeCtx, i.closeCancel = context.WithCancel(context.Background())
	i.buildRoutes()
	return i, nil
}

// makeAccountDir creates the account directory (0700) if missing and
// checks who may write it. Errors wrap renew.ErrConfig.
func makeAccountDir(dir string) error {
	// Durably: the account must outlive a power loss once an order made
	// with it is journaled, or the order could not be resumed.
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: AccountDir: %w", renew.ErrConfig, err)
	}
	// Whoever can write the account directory can plant a key and act as
	// the account (revoke its certificates): the lineage directories' rules.
	if err := safefile.CheckDir(dir); err != nil {
		return fmt.Errorf("%w: AccountDir: %w", renew.ErrConfig, err)
	}
	return nil
}

// Connect loads, finds or registers the ACME account now instead of on the
// first Issue or Resume. It is optional; use it to fail early (e.g. on a
// missing External Account Binding). Errors are classified like Issue's.
func (i *Issuer) Connect(ctx context.Context) error {
	if i.isClosed() {
		return permanent("", "account", errClosed)
	}
	_, err := i.accountCore(ctx)
	return err
}

// HTTP01Handler returns a handler that answers HTTP-01 challenges presented
// by this Issuer (GET /.well-known/acme-challenge/TOKEN) and 404s anything
// else. Mount it in a port-80 server you already run when Config.HTTP01 (or
// a route's) has neither Addr nor Webroot; it also answers the tokens the
// default's built-in listener serves, but not those of a route's listener
// on another address. Safe for concurrent use.
func (i *Issuer) HTTP01Handler() http.Handler { return i.tokens }

// Close releases the challenge listeners and waits for clean-up still
// running in the background (DNS-01 records being removed, pending
// authorizations being deactivated), each bounded by CleanupTimeout: a
// program stopped by a signal mid-order still removes the TXT records it
// presented. Issue, Resume and RenewalInfo fail with a permanent error afterwards. Close does not wait for
// calls in progress (cancel their contexts for that). Close is idempotent.
func (i *Issuer) Close() error {
	var errs []error
	i.closeOnce.Do(func() {
		i.closeCancel()
		for _, s := range i.servers {
			if err := s.close(); err != nil {
				errs = append(errs, fmt.Errorf("acmeissuer: close listener %s: %w", s.addr, err))
			}
		}
		i.bgMu.Lock()
		i.bgClosed = true
		i.bgMu.Unlock()
		i.bg.Wait()
	})
	return errors.Join(errs...)
}

func (i *Issuer) isClosed() bool { return i.closeCtx.Err() != nil }

// background runs f in a goroutine owned by the Issuer (Close waits for it)
// with a context independent of any caller's, bounded by CleanupTimeout.
// It reports false, and does not run f, once Close has begun.
func (i *Issuer) background(f func(ctx context.Context)) bool {
	i.bgMu.Lock()
	defer i.bgMu.Unlock()
	if i.bgClosed {
		return false
	}
	i.bg.Add(1)
	go func() {
		defer i.bg.Done()
		// Not bounded by closeCtx: Close waits for clean-up rather than
		// cutting it short (a DNS record left behind piles up at an
		// appending provider).
		ctx, cancel := context.WithTimeout(context.Background(), i.cfg.CleanupTimeout)
		defer cancel()
		f(ctx)
	}()
	return true
}

// Issue orders a certificate for req.Domains signed for req.Key, solving the
// challenges with the configured solvers, and returns it. The steps are
// listed in the package documentation. The names are put in canonical form
// ([renew.CanonicalName]: lower case, no trailing dot, canonical IP
// addresses) and deduplicated (the first stays first) before the order; the
// journal record carries them in that form.
//
// journal is called exactly once, after the order is ready and before it is
// finalized; if it returns an error, the order is not finalized and Issue
// returns that error (errors.Is holds). Once journal succeeded, an error from
// Issue does not mean that nothing was issued: the caller should Resume the
// journaled order before ordering again. When the CA refuses the finalize
// because the order is no longer ready (another process resumed and
// finalized the journaled order while this one was paused), Issue collects
// that order's certificate instead of failing; it is returned only if it is
// for req.Key.
//
// When req.Replaces is set and the CA speaks ARI, the order carries
// "replaces". If the CA answers alreadyReplaced (RFC 9773 §5: another order
// already replaces that certificate), lego re-sends the order without it;
// Issue then logs a warning and reports it in Issued.AlreadyReplaced instead
// of failing, because the certificate still has to be renewed.
//
// When the CA answers accountDoesNotExist (its database was reset, or a
// test CA restarted), the account is registered again once, with the same
// key or, if the CA refuses that key, a new one (see the package
// documentation), and the order is placed again with it; if the order was
// already journaled, Issue returns a permanent error instead, so that the
// caller resumes it.
//
// Errors are *Error values wrapped in a backoff class, or, when ctx ended,
// unclassified with errors.Is(err, ctx.Err()) true; Issue returns promptly
// when ctx ends, at any step.
func (i *Issuer) Issue(ctx context.Context, req renew.IssueRequest, journal func(ctx context.Context, rec renew.InFlight) error) (*renew.Issued, error) {
	if err := checkRequest(req, journal); err != nil {
		return nil, permanent(req.Name, "request", err)
	}
	if i.isClosed() {
		return nil, permanent(req.Name, "request", errClosed)
	}
	rt, err := i.routeFor(req.Name)
	if err != nil {
		return nil, err
	}
	core, err := i.accountCore(ctx)
	if err != nil {
		return nil, withName(err, req.Name)
	}
	req.Domains = normalizeDomains(req.Domains)
	journaled := false
	once := func(ctx context.Context, rec renew.InFlight) error {
		journaled = true
		return journal(ctx, rec)
	}
	r := &orderRun{i: i, rt: rt, core: core, name: req.Name, log: i.log.With("certificate", req.Name)}
	issued, err := r.issue(ctx, req, once)
	if !accountGone(err) {
		return issued, err
	}
	if core, err = i.reRegister(ctx, core); err != nil {
		return nil, withName(err, req.Name)
	}
	if journaled {
		// journal is called once per Issue: the caller resumes the
		// journaled order (or finds it gone) and orders anew.
		return nil, permanent(req.Name, "account", errors.New("the CA no longer knew the ACME account after the order was journaled; registered it again: the next attempt orders with it"))
	}
	r = &orderRun{i: i, rt: rt, core: core, name: req.Name, log: i.log.With("certificate", req.Name)}
	return r.issue(ctx, req, once)
}

// Resume finishes an order a previous process journaled: it polls the order
// until it is valid and downloads its certificate, without ordering again.
// An order still "ready" (the journaling process's finalize never reached
// the CA: it died, or is paused) is finalized by Resume with rec.Key and
// a CSR for the journaled names, then polled and downloaded the same way; a
// process that finalizes it later is refused by the CA (orderNotReady), and
// an Issue refused so collects the same certificate. A finalize of Resume's
// own refused because someone else finalized the order meanwhile is not an
// error either: the order is fetched again and its certificate collected.
// An account the CA no longer knows is registered again, as in Issue, and
// the order looked up once more (a reset CA has usually forgotten it too).
//
// It returns an error that errors.Is [renew.ErrOrderGone] (and is
// backoff.Permanent) when the order cannot produce a certificate any more:
// the CA no longer knows it, it is invalid or expired, or it is ready and
// rec.Key is nil (nothing to sign the CSR with), or still pending. The
// caller then orders anew; an order that was never finalized wasted no
// issuance. Other errors are classified like Issue's.
func (i *Issuer) Resume(ctx context.Context, rec renew.InFlight) (*renew.Issued, error) {
	name := ""
	if len(rec.Domains) > 0 {
		name = rec.Domains[0]
	}
	if rec.OrderURL == "" {
		return nil, permanent(name, "resume", fmt.Errorf("%w: the journal record has no order URL", renew.ErrOrderGone))
	}
	if i.isClosed() {
		return nil, permanent(name, "resume", errClosed)
	}
	core, err := i.accountCore(ctx)
	if err != nil {
		return nil, withName(err, name)
	}
	r := &orderRun{i: i, core: core, name: name, log: i.log.With("certificate", name, "order", rec.OrderURL)}
	issued, err := r.resume(ctx, rec)
	if !accountGone(err) {
		return issued, err
	}
	if core, err = i.reRegister(ctx, core); err != nil {
		return nil, withName(err, name)
	}
	r.core = core
	return r.resume(ctx, rec)
}

// RenewalInfo returns the CA's suggested renewal window for leaf (ACME
// Renewal Information, RFC 9773). It needs no account. When the CA's
// directory offers no renewalInfo endpoint the error satisfies
// errors.Is(err, errors.ErrUnsupported); other errors are classified like
// Issue's (a window whose end is not after its start is transient: RFC 9773
// §4.2 says to treat it as no answer).
func (i *Issuer) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (expiry.Window, error) {
	const step = "renewal info"
	if leaf == nil {
		return expiry.Window{}, permanent("", step, errors.New("nil certificate"))
	}
	name := leaf.Subject.CommonName
	if len(leaf.DNSNames) > 0 {
		name = leaf.DNSNames[0]
	}
	if i.isClosed() {
		return expiry.Window{}, permanent(name, step, errClosed)
	}
	core, err := i.directoryCore(ctx)
	if err != nil {
		return expiry.Window{}, withName(err, name)
	}
	if core.GetDirectory().RenewalInfo == "" {
		return expiry.Window{}, &Error{Name: name, Step: step, Err: fmt.Errorf("%w: the CA at %s offers no renewal information (ARI)", errors.ErrUnsupported, i.cfg.DirectoryURL)}
	}
	id, err := api.MakeARICertID(leaf)
	if err != nil {
		return expiry.Window{}, permanent(name, step, fmt.Errorf("certificate ID: %w", err))
	}
	cctx, ri := withRespInfo(ctx)
	info, err := core.Certificates.GetRenewalInfo(cctx, id)
	if err != nil {
		if errors.Is(err, api.ErrNoARI) && ctx.Err() == nil {
			return expiry.Window{}, transient(name, step, errors.New("the CA sent a window whose end is not after its start"), 0)
		}
		return expiry.Window{}, fail(ctx, name, step, err, ri)
	}
	return expiry.Window{
		Start:          info.SuggestedWindow.Start,
		End:            info.SuggestedWindow.End,
		ExplanationURL: info.ExplanationURL,
	}, nil
}

// SetLegoLogger replaces lego's process-wide logger (lego/v5/log.SetDefault),
// which lego writes to stdout at Info level by default. It affects every
// lego user in the process, which is why no Issuer calls it on its own. The
// Issuer's requests rarely make lego log (a badNonce retry does).
func SetLegoLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	legolog.SetDefault(l)
}

// checkRequest validates what Issue was given.
func checkRequest(req renew.IssueRequest, journal func(ctx context.Context, rec renew.InFlight) error) error {
	if journal == nil {
		return errors.New("journal is nil")
	}
	if req.Key == nil {
		return errors.New("request has no key")
	}
	if len(req.Domains) == 0 {
		return errors.New("request has no domains")
	}
	for _, d := range req.Domains {
		if renew.CanonicalName(d) == "" {
			return errors.New("request has an empty domain")
		}
	}
	return nil
}

// normalizeDomains puts the names in [renew.CanonicalName]'s form (lower
// case, no trailing dot, canonical IP addresses) and drops duplicates,
// keeping the order (the first name stays first). CAs answer with
// canonical identifiers and lego refuses an order whose identifiers differ
// from the request's.
func normalizeDomains(in []string) []string {
	out := make([]string, 0, len(in))
	for _, d := range in {
		d = renew.CanonicalName(d)
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// withName sets the certificate name on an *Error inside err (account steps
// run without one).
func withName(err error, name string) error {
	if e, ok := errors.AsType[*Error](err); ok && e.Name == "" {
		e.Name = name
	}
	return err
}

// problemOf returns the problem document of a failed order, authorization or
// challenge, or a placeholder when the CA gave none.
func problemOf(p *acme.ProblemDetails, what, status string) error {
	if p != nil {
		return p
	}
	return fmt.Errorf("%s is %s and the CA gave no reason", what, status)
}
