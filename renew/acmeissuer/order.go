package acmeissuer

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/challenge"

	"github.com/renewkit/renewkit/internal/crashpoint"
	"github.com/renewkit/renewkit/internal/pubkey"
	"github.com/renewkit/renewkit/internal/textclip"
	"github.com/renewkit/renewkit/renew"
)

// maxPollErrors is how many transient errors in a row a poll rides out.
const maxPollErrors = 3

// orderRun is one Issue or Resume call.
type orderRun struct {
	i    *Issuer
	rt   *route // the certificate's challenges; nil in Resume, which solves none
	core *api.Core
	name string
	log  *slog.Logger

	// pending holds the authorizations found pending and not yet seen
	// valid: deactivated if the order fails before finalize.
	pending map[string]bool
	// presented holds the challenges presented and not yet cleaned up.
	presented []*presented
}

// presented is one challenge whose response is being served.
type presented struct {
	authzURL string
	domain   string // targeted name ("*.example.org" for a wildcard)
	ident    string // identifier value (no "*.")
	chal     acme.Challenge
	solver   solver
	keyAuth  string
	fqdn     string // DNS-01 record name ("_acme-challenge.example.org.")
	value    string // DNS-01 record value
}

func (p *presented) step() string {
	return fmt.Sprintf("challenge %s for %s", p.solver.typ, p.domain)
}

// issue runs steps 2 to 9 of the package documentation.
func (r *orderRun) issue(ctx context.Context, req renew.IssueRequest, journal func(ctx context.Context, rec renew.InFlight) error) (_ *renew.Issued, err error) {
	core, dir := r.core, r.core.GetDirectory()

	// (2) new order.
	opts := &api.OrderOptions{Profile: req.Profile}
	if req.Profile != "" {
		if _, ok := dir.Meta.Profiles[req.Profile]; !ok {
			return nil, permanent(r.name, "new order", fmt.Errorf("the CA does not offer profile %q (it offers %v)", req.Profile, slices.Sorted(maps.Keys(dir.Meta.Profiles))))
		}
	}
	if req.Replaces != nil {
		if dir.RenewalInfo == "" {
			r.log.Debug("the CA does not speak ARI: ordering without \"replaces\"")
		} else if id, err := api.MakeARICertID(req.Replaces); err != nil {
			r.log.Warn("cannot compute the ARI certificate ID of the replaced certificate: ordering without \"replaces\"", "error", err)
		} else {
			opts.ReplacesCertID = id
		}
	}
	cctx, ri := withRespInfo(ctx)
	order, err := core.Orders.New(cctx, req.Domains, opts)
	if pd, ok := errors.AsType[*acme.ProblemDetails](err); ok && pd.Type == acme.UnauthorizedErrorType && opts.ReplacesCertID != "" && ctx.Err() == nil {
		// RFC 9773 §5: only the account that ordered a certificate may
		// replace it; after the account was registered again (the CA
		// forgot it, or its key) the predecessor is another account's.
		r.log.Warn("the CA refuses \"replaces\" from this account (another account ordered the certificate being replaced); ordering without it",
			"replaces", opts.ReplacesCertID)
		opts.ReplacesCertID = ""
		cctx, ri = withRespInfo(ctx)
		order, err = core.Orders.New(cctx, req.Domains, opts)
	}
	if err != nil {
		return nil, fail(ctx, r.name, "new order", err, ri)
	}
	orderURL := order.Location
	// From here on the CA has an order: a local failure is Ordered.
	defer func() { err = markOrdered(err) }()
	if orderURL == "" {
		return nil, permanent(r.name, "new order", errors.New("the CA returned no order URL"))
	}
	_, _, conflicts := ri.snapshot()
	alreadyReplaced := opts.ReplacesCertID != "" && conflicts > 0
	if alreadyReplaced {
		// lego retried the newOrder without "replaces" after a 409.
		r.log.Warn("the CA says the certificate being replaced was already replaced by another order (ARI alreadyReplaced); ordered without \"replaces\"",
			"order", orderURL, "replaces", opts.ReplacesCertID)
	}
	r.log.Info("order created", "order", orderURL, "status", order.Status, "profile", req.Profile,
		"replaces", opts.ReplacesCertID != "" && !alreadyReplaced)

	finalized := false
	defer func() {
		r.cleanUp(ctx, nil)
		if !finalized {
			r.deactivate(ctx)
		}
	}()

	// (3), (4) authorizations and challenges.
	switch order.Status {
	case acme.StatusPending:
		if err := r.authorize(ctx, order.Authorizations); err != nil {
			return nil, err
		}
	case acme.StatusReady:
	case acme.StatusInvalid:
		return nil, r.orderFailed(ctx, "new order", order.Order)
	default:
		return nil, permanent(r.name, "new order", fmt.Errorf("new order %s has status %q", orderURL, order.Status))
	}

	// (5) ready.
	ready, err := r.poll(ctx, "order ready", r.i.cfg.ValidationTimeout, func(ctx context.Context) (string, error) {
		o, err := core.Orders.Get(ctx, orderURL)
		if err == nil {
			order.Order = o.Order
		}
		return o.Status, err
	}, acme.StatusPending)
	if err != nil {
		return nil, err
	}
	if ready != acme.StatusReady {
		if ready == acme.StatusInvalid {
			return nil, r.orderFailed(ctx, "order ready", order.Order)
		}
		return nil, permanent(r.name, "order ready", fmt.Errorf("order %s has status %q, want ready", orderURL, ready))
	}

	csr, err := certcrypto.CreateCSR(req.Key, certcrypto.CSROptions{SAN: req.Domains})
	if err != nil {
		return nil, permanent(r.name, "csr", err)
	}

	// (6) journal: the last step before the point of no return.
	rec := renew.InFlight{OrderURL: orderURL, Domains: slices.Clone(req.Domains), Created: r.i.now().UTC()}
	if err := journal(ctx, rec); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, &Error{Name: r.name, Step: "journal", Err: fmt.Errorf("%w (journal: %w)", ctxErr, err)}
		}
		return nil, permanent(r.name, "journal", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, stopped(ctx, r.name, "journal")
	}
	crashpoint.Hit("acmeissuer", "after-journal")

	// (7) finalize.
	status, err := r.finalize(ctx, orderURL, order.Finalize, csr)
	if err != nil {
		return nil, err
	}
	finalized = true
	crashpoint.Hit("acmeissuer", "after-finalize")

	// (8), (9)
	issued, err := r.collect(ctx, orderURL, status)
	if err != nil {
		return nil, err
	}
	if !pubkey.Equal(req.Key.Public(), issued.Leaf.PublicKey) {
		return nil, permanent(r.name, "download", fmt.Errorf("the certificate from %s is not for the request's key", orderURL))
	}
	issued.AlreadyReplaced = alreadyReplaced
	return issued, nil
}

// resume is Resume's body.
func (r *orderRun) resume(ctx context.Context, rec renew.InFlight) (*renew.Issued, error) {
	const step = "resume"
	cctx, ri := withRespInfo(ctx)
	order, err := r.core.Orders.Get(cctx, rec.OrderURL)
	if err != nil {
		e, c := classify(ctx, r.name, step, err, ri)
		if c != classStop && (e.Status == 404 || e.Status == 403 && e.ProblemType == acme.UnauthorizedErrorType) {
			e.Err = fmt.Errorf("%w: %s: %w", renew.ErrOrderGone, rec.OrderURL, err)
			e.ProblemType = "" // print Err, which names ErrOrderGone
			return nil, wrapClass(e, classPermanent)
		}
		return nil, wrapClass(e, c)
	}
	if len(rec.Domains) > 0 && !sameIdentifiers(rec.Domains, order.Identifiers) {
		return nil, permanent(r.name, step, fmt.Errorf("%w: order %s is for %v, the journal says %v", renew.ErrOrderGone, rec.OrderURL, identValues(order.Identifiers), rec.Domains))
	}
	switch order.Status {
	case acme.StatusValid, acme.StatusProcessing:
		r.log.Info("resuming journaled order", "status", order.Status)
		return r.collect(ctx, rec.OrderURL, order.Status)
	case acme.StatusReady:
		if rec.Key == nil {
			return nil, permanent(r.name, step, fmt.Errorf("%w: order %s is ready: it was never finalized, and the record has no key to finalize it with; order anew", renew.ErrOrderGone, rec.OrderURL))
		}
		// Its finalize never reached the CA: the process that journaled it
		// died, or is paused (and would finalize it when it wakes). Finalize
		// it here with the journaled key, so that it stays the only order
		// and a late finalize is refused.
		domains := normalizeDomains(rec.Domains)
		if len(domains) == 0 {
			domains = identValues(order.Identifiers)
		}
		csr, err := certcrypto.CreateCSR(rec.Key, certcrypto.CSROptions{SAN: domains})
		if err != nil {
			return nil, permanent(r.name, "csr", err)
		}
		r.log.Info("resuming journaled order: it is ready, finalizing it with the journaled key")
		status, err := r.finalize(ctx, rec.OrderURL, order.Finalize, csr)
		if err != nil {
			return nil, err
		}
		return r.collect(ctx, rec.OrderURL, status)
	case acme.StatusPending:
		return nil, permanent(r.name, step, fmt.Errorf("%w: order %s is pending: it was never finalized, order anew", renew.ErrOrderGone, rec.OrderURL))
	default:
		why := ""
		if order.Error != nil {
			why = ": " + textclip.Head(order.Error.Error(), maxErrText)
		}
		return nil, permanent(r.name, step, fmt.Errorf("%w: order %s is %s%s", renew.ErrOrderGone, rec.OrderURL, order.Status, why))
	}
}

// finalize sends the order's finalize request with csr (step 7, and Resume
// of a ready order) and returns the order's status after it. A finalize the
// CA refuses because the order is no longer ready (orderNotReady: another
// process finalized it meanwhile, such as one that resumed this journaled
// order while this one was paused) is not an error when the order is now
// processing or valid: that order's certificate is the one to collect, and
// the CA issues only one per order.
func (r *orderRun) finalize(ctx context.Context, orderURL, finalizeURL string, csr []byte) (string, error) {
	const step = "finalize"
	cctx, ri := withRespInfo(ctx)
	fin, err := r.core.Orders.UpdateForCSR(cctx, finalizeURL, csr)
	if err != nil {
		var pd *acme.ProblemDetails
		if !errors.As(err, &pd) && strings.HasPrefix(err.Error(), "invalid order") && ctx.Err() == nil {
			// lego turns an "invalid" answer into an untyped error.
			return "", permanent(r.name, step, err)
		}
		if pd == nil || pd.Type != acme.OrderNotReadyErrorType || ctx.Err() != nil {
			return "", fail(ctx, r.name, step, err, ri)
		}
		gctx, gri := withRespInfo(ctx)
		o, gerr := r.core.Orders.Get(gctx, orderURL)
		if gerr != nil {
			return "", fail(ctx, r.name, step, gerr, gri)
		}
		switch o.Status {
		case acme.StatusProcessing, acme.StatusValid:
		case acme.StatusInvalid:
			return "", r.orderFailed(ctx, step, o.Order)
		default:
			return "", fail(ctx, r.name, step, err, ri)
		}
		r.log.Info("the CA refused the finalize: another process finalized the order; collecting its certificate", "order", orderURL, "status", o.Status)
		return o.Status, nil
	}
	r.log.Info("order finalized", "order", orderURL, "status", fin.Status)
	if r.i.afterFinalize != nil {
		r.i.afterFinalize()
	}
	return fin.Status, nil
}

// authorize fetches the order's authorizations and solves the pending ones
// in rounds (see [rounds]): in each, take the locks of its DNS-01 record
// names, present every challenge, wait for DNS propagation, have the CA
// validate each, clean up, release the locks.
func (r *orderRun) authorize(ctx context.Context, urls []string) error {
	var todo []*presented
	for _, u := range urls {
		cctx, ri := withRespInfo(ctx)
		authz, err := r.core.Authorizations.Get(cctx, u)
		if err != nil {
			return fail(ctx, r.name, "authorization", err, ri)
		}
		domain := challenge.GetTargetedDomain(authz)
		switch authz.Status {
		case acme.StatusValid:
			continue
		case acme.StatusPending:
		case acme.StatusInvalid:
			return r.authzFailed(ctx, "authorization "+domain, authz)
		default:
			return permanent(r.name, "authorization "+domain, fmt.Errorf("authorization %s is %s", u, authz.Status))
		}
		if r.pending == nil {
			r.pending = make(map[string]bool)
		}
		r.pending[u] = true
		ch, s, err := r.rt.pick(authz)
		if err != nil {
			return permanent(r.name, "authorization "+domain, err)
		}
		keyAuth, err := r.core.GetKeyAuthorization(ch.Token)
		if err != nil {
			return permanent(r.name, "authorization "+domain, err)
		}
		p := &presented{authzURL: u, domain: domain, ident: authz.Identifier.Value, chal: ch, solver: s, keyAuth: keyAuth}
		if s.typ == challenge.DNS01 {
			p.fqdn, p.value = dns01Record(p.ident, keyAuth)
		}
		todo = append(todo, p)
	}

	for k, round := range rounds(todo) {
		if k > 0 {
			if d, ok := sequenceInterval(r.rt.ch.DNS01); ok && d > 0 {
				r.log.Info("waiting before presenting the next value of a shared DNS-01 record (the provider presents one value at a time)",
					"record", round[0].fqdn, "wait", d)
				if err := sleep(ctx, d); err != nil {
					return stopped(ctx, r.name, "dns sequence interval")
				}
			}
		}
		if err := r.solveRound(ctx, round); err != nil {
			return err
		}
	}
	return nil
}

// rounds splits the challenges into rounds in which no two DNS-01
// challenges share a record name: round k holds the k-th challenge of each
// record name (a wildcard and its base name, "*.example.org" and
// "example.org", both use _acme-challenge.example.org), and every HTTP-01 and
// TLS-ALPN-01 challenge goes in the first. Presenting one value per name at
// a time is what a provider that replaces the record set needs (lego's
// rfc2136, and any "Sequential" provider), and it costs one more round
// where a provider appends; it is done for every provider, so that no
// provider's behaviour needs to be known.
func rounds(todo []*presented) [][]*presented {
	var out [][]*presented
	seen := make(map[string]int)
	for _, p := range todo {
		k := 0
		if p.solver.typ == challenge.DNS01 {
			k = seen[p.fqdn]
			seen[p.fqdn]++
		}
		for len(out) <= k {
			out = append(out, nil)
		}
		out[k] = append(out[k], p)
	}
	return out
}

// sequenceInterval returns the wait a provider asks for between two
// values presented one after another (lego's providers that set the whole
// record declare it with a Sequential method; lego waits it too).
func sequenceInterval(d *DNS01) (time.Duration, bool) {
	if d == nil {
		return 0, false
	}
	switch s := d.Provider.(type) {
	case interface{ Sequential() time.Duration }:
		return s.Sequential(), true
	case interface{ Sequential() (bool, time.Duration) }:
		ok, iv := s.Sequential()
		return iv, ok
	}
	return 0, false
}

// solveRound solves one round of challenges: (a) lock its DNS-01 record
// names; (b) present each challenge; (c) wait for DNS propagation; (d) ask
// the CA to validate each; (e) clean up every presented challenge and only
// then (f) release the locks, on every path.
func (r *orderRun) solveRound(ctx context.Context, round []*presented) error {
	// (a)
	var names []string
	for _, p := range round {
		if p.solver.typ == challenge.DNS01 {
			names = append(names, p.fqdn)
		}
	}
	unlock := func() {}
	if len(names) > 0 {
		var err error
		unlock, err = r.rt.dnsLocks.lock(ctx, names, r.log)
		if err != nil {
			if ctx.Err() != nil {
				return stopped(ctx, r.name, "dns record lock")
			}
			return permanent(r.name, "dns record lock", err)
		}
	}
	defer r.cleanUp(ctx, unlock) // (e), (f)

	// (b)
	var txt []txtRecord
	for _, p := range round {
		if err := p.solver.provider.Present(ctx, p.ident, p.chal.Token, p.keyAuth); err != nil {
			return r.presentFailed(ctx, p, err)
		}
		r.presented = append(r.presented, p)
		if p.solver.typ == challenge.DNS01 {
			r.i.ours.add(p.value, fmt.Sprintf("the challenge for %s of certificate %q", p.domain, r.name))
			txt = append(txt, txtRecord{domain: p.domain, fqdn: p.fqdn, value: p.value})
		}
	}
	// (c)
	if len(txt) > 0 {
		step := "dns propagation for " + txt[0].domain
		pr, err := r.rt.propagation()
		if err != nil {
			return permanent(r.name, step, err)
		}
		if err := pr.wait(ctx, txt, r.i.ours.describe); err != nil {
			if ctx.Err() != nil {
				return stopped(ctx, r.name, step)
			}
			return transient(r.name, "dns propagation", err, 0)
		}
	}
	// (d)
	for _, p := range round {
		if err := webrootHint(p, r.validate(ctx, p)); err != nil {
			return err
		}
		delete(r.pending, p.authzURL)
	}
	return nil
}

// markOrdered marks a *renew.LocalError in err as found after an order was
// placed (renew counts such a failure against the CA's backoff). err's
// message and its errors.Is answers are unchanged.
func markOrdered(err error) error {
	var le *renew.LocalError
	if !errors.As(err, &le) || le.Ordered {
		return err
	}
	ordered := *le
	ordered.Ordered = true
	return &orderedError{err: err, local: &ordered}
}

// orderedError is err, whose *renew.LocalError is seen by errors.As as
// local, a copy with Ordered set.
type orderedError struct {
	err   error
	local *renew.LocalError
}

func (e *orderedError) Error() string { return e.err.Error() }
func (e *orderedError) Unwrap() error { return e.err }

func (e *orderedError) As(target any) bool {
	if t, ok := target.(**renew.LocalError); ok {
		*t = e.local
		return true
	}
	return false
}

// presentFailed classifies a failed Present: a local problem the provider
// recognised (refused credentials, a zone it may not update) is permanent
// and keeps its *renew.LocalError; anything else may be passing.
func (r *orderRun) presentFailed(ctx context.Context, p *presented, err error) error {
	switch {
	case ctx.Err() != nil:
		return stopped(ctx, r.name, p.step())
	case errors.Is(err, errClosed):
		return permanent(r.name, p.step(), err)
	case errors.Is(err, renew.ErrLocal):
		return permanent(r.name, p.step(), fmt.Errorf("present: %w", err))
	case p.solver.typ == challenge.DNS01 && credentialsRefused(err):
		d := r.rt.ch.DNS01
		fix := d.CredentialsFix
		if fix == "" {
			fix = "check the provider's credentials and their permission on the zone"
		}
		return permanent(r.name, p.step(), fmt.Errorf("present: %w",
			&renew.LocalError{What: providerName(d), Err: fmt.Errorf("credentials refused: %w", err), Fix: fix}))
	}
	return transient(r.name, p.step(), fmt.Errorf("present: %w", err), 0)
}

// awsAuthCodes are the AWS API error codes of refused credentials.
var awsAuthCodes = []string{"AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
	"UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId"}

// credentialsRefused reports whether a DNS provider's error says that its
// API refused the credentials: an HTTP 401 or 403 as lego's providers
// (and go-ovh) word it, or an AWS authentication error code (found through an
// ErrorCode method, as the AWS SDK's errors have). Retrying cannot help.
func credentialsRefused(err error) bool {
	msg := err.Error()
	for _, code := range []string{"401", "403"} {
		if strings.Contains(msg, "[status code: "+code+"]") || strings.Contains(msg, "[status code "+code+"]") ||
			strings.Contains(msg, "(status code "+code+")") { // go-ovh's APIError
			return true
		}
	}
	coded, ok := errors.AsType[interface {
		error
		ErrorCode() string
	}](err)
	return ok && slices.Contains(awsAuthCodes, coded.ErrorCode())
}

// validate asks the CA to validate p's challenge and polls the
// authorization until it is no longer pending.
func (r *orderRun) validate(ctx context.Context, p *presented) error {
	step := p.step()
	cctx, ri := withRespInfo(ctx)
	ch, err := r.core.Challenges.New(cctx, p.chal.URL)
	if err != nil {
		return fail(ctx, r.name, step, err, ri)
	}
	if ch.Status == acme.StatusInvalid {
		e, c := classify(ctx, r.name, step, problemOf(ch.Error, "challenge", ch.Status), nil)
		return wrapClass(e, c)
	}
	if ch.Status == acme.StatusPending && ch.Error != nil {
		return r.challengeFailed(ctx, step, ch.Error)
	}
	r.log.Debug("challenge accepted", "type", p.solver.typ, "domain", p.domain, "status", ch.Status)
	var authz acme.Authorization
	var stuck *acme.ProblemDetails
	status, err := r.pollWith(ctx, step, r.i.cfg.ValidationTimeout, ch.RetryAfter, func(ctx context.Context) (string, error) {
		a, err := r.core.Authorizations.Get(ctx, p.authzURL)
		authz = a
		if err == nil && a.Status == acme.StatusPending {
			if stuck = pendingError(a, p.chal.URL); stuck != nil {
				return statusPendingWithError, nil
			}
		}
		return a.Status, err
	}, acme.StatusPending)
	if err != nil {
		return err
	}
	switch status {
	case acme.StatusValid:
		r.log.Debug("authorization valid", "domain", p.domain)
		return nil
	case acme.StatusInvalid:
		return r.authzFailed(ctx, step, authz)
	case statusPendingWithError:
		return r.challengeFailed(ctx, step, stuck)
	default:
		return permanent(r.name, step, fmt.Errorf("authorization %s is %s", p.authzURL, status))
	}
}

// statusPendingWithError is the status validate's poll reports for an
// authorization whose challenge is pending with an error (never an ACME
// status).
const statusPendingWithError = "pending with an error"

// pendingError returns the error of the challenge at chalURL in authz when
// that challenge is "pending" and carries one: the CA tried, failed and
// will not try again by itself (step-ca does this). RFC 8555 §8.2 has a
// server that retries on its own keep the challenge "processing", with the
// last attempt's error: that is polled on, until ValidationTimeout.
func pendingError(authz acme.Authorization, chalURL string) *acme.ProblemDetails {
	for _, c := range authz.Challenges {
		if c.URL == chalURL && c.Status == acme.StatusPending && c.Error != nil {
			return c.Error
		}
	}
	return nil
}

// challengeFailed is the error of a challenge the CA reports pending with
// an error. The attempt fails at once with the CA's reason, classified like
// an invalid authorization's, instead of asking the CA to validate again
// (RFC 8555 §8.2 allows a client to): nothing this run could change would
// answer differently, and each failed validation counts against the CA's
// failed-validation limit. The caller's backoff decides when to try again.
func (r *orderRun) challengeFailed(ctx context.Context, step string, pd *acme.ProblemDetails) error {
	r.log.Debug("the CA reports the challenge pending with an error; failing the attempt", "step", step)
	return failedObject(ctx, r.name, step, pd)
}

// failedObject classifies the error an invalid order or authorization, or a
// failed challenge, carries. Without a problem type it is permanent: the
// object stays failed.
func failedObject(ctx context.Context, name, step string, err error) error {
	e, c := classify(ctx, name, step, err, nil)
	if c == classTransient && e.ProblemType == "" {
		c = classPermanent
	}
	return wrapClass(e, c)
}

// authzFailed classifies an invalid authorization by its challenge's error.
func (r *orderRun) authzFailed(ctx context.Context, step string, authz acme.Authorization) error {
	var pd *acme.ProblemDetails
	for _, c := range authz.Challenges {
		if c.Error != nil {
			pd = c.Error
			break
		}
	}
	return failedObject(ctx, r.name, step, problemOf(pd, "authorization", authz.Status))
}

// orderFailed classifies an invalid order by its error.
func (r *orderRun) orderFailed(ctx context.Context, step string, o acme.Order) error {
	return failedObject(ctx, r.name, step, problemOf(o.Error, "order", o.Status))
}

// collect polls a finalized order until it is valid and downloads the
// certificate (steps 8 and 9), riding out a few transient errors in a row.
func (r *orderRun) collect(ctx context.Context, orderURL, status string) (*renew.Issued, error) {
	deadline := r.i.now().Add(r.i.cfg.IssuanceTimeout)
	var order acme.Order
	if status != acme.StatusValid {
		st, err := r.poll(ctx, "order poll", r.i.cfg.IssuanceTimeout, func(ctx context.Context) (string, error) {
			o, err := r.core.Orders.Get(ctx, orderURL)
			if err == nil {
				order = o.Order
			}
			return o.Status, err
		}, acme.StatusProcessing, acme.StatusReady, acme.StatusPending)
		if err != nil {
			return nil, err
		}
		if st != acme.StatusValid {
			if st == acme.StatusInvalid {
				return nil, r.orderFailed(ctx, "order poll", order)
			}
			return nil, permanent(r.name, "order poll", fmt.Errorf("order %s has status %q", orderURL, st))
		}
	} else {
		cctx, ri := withRespInfo(ctx)
		o, err := r.core.Orders.Get(cctx, orderURL)
		if err != nil {
			return nil, fail(ctx, r.name, "order poll", err, ri)
		}
		order = o.Order
	}
	if order.Certificate == "" {
		return nil, permanent(r.name, "download", fmt.Errorf("valid order %s has no certificate URL", orderURL))
	}

	var issued *renew.Issued
	_, err := r.pollWithDeadline(ctx, "download", deadline, 0, func(ctx context.Context) (string, error) {
		raw, err := r.core.Certificates.Get(ctx, order.Certificate, false)
		if err != nil {
			return "", err
		}
		leaf, err := parseLeaf(raw.Cert)
		if err != nil {
			return "", fmt.Errorf("certificate from %s: %w", order.Certificate, err)
		}
		issued = &renew.Issued{Cert: raw.Cert, Chain: raw.Issuer, Leaf: leaf, OrderURL: orderURL}
		return acme.StatusValid, nil
	})
	if err != nil {
		return nil, err
	}
	r.log.Info("certificate issued", "order", orderURL, "serial", issued.Leaf.SerialNumber.Text(16), "not_after", issued.Leaf.NotAfter)
	return issued, nil
}

// fetchFunc fetches an object's status. Its ctx carries a respInfo.
type fetchFunc func(ctx context.Context) (status string, err error)

// poll calls fetch until its status is not one of waitOn, with the first
// call immediate and the waits of nextWait in between.
func (r *orderRun) poll(ctx context.Context, step string, timeout time.Duration, fetch fetchFunc, waitOn ...string) (string, error) {
	return r.pollWith(ctx, step, timeout, 0, fetch, waitOn...)
}

func (r *orderRun) pollWith(ctx context.Context, step string, timeout time.Duration, retryAfter time.Duration, fetch fetchFunc, waitOn ...string) (string, error) {
	return r.pollWithDeadline(ctx, step, r.i.now().Add(timeout), retryAfter, fetch, waitOn...)
}

// pollWithDeadline is poll with an absolute deadline. firstRetryAfter is a
// Retry-After the CA sent before the first fetch (a challenge response); it
// delays the first fetch. Up to maxPollErrors transient or rate-limited
// failures in a row are retried within the deadline.
func (r *orderRun) pollWithDeadline(ctx context.Context, step string, deadline time.Time, firstRetryAfter time.Duration, fetch fetchFunc, waitOn ...string) (string, error) {
	retryAfter := firstRetryAfter
	errorsInRow := 0
	last := "unknown"
	for attempt := 0; ; attempt++ {
		wait := nextWait(attempt, retryAfter, r.i.cfg.PollInterval, r.i.cfg.MaxPollInterval)
		if attempt == 0 && firstRetryAfter > 0 {
			wait = firstRetryAfter
		}
		if wait > 0 {
			if r.i.now().Add(wait).After(deadline) {
				return "", transient(r.name, step, fmt.Errorf("gave up: status still %s, and the next poll (in %v) would pass the deadline", last, wait), retryAfter)
			}
			if err := sleep(ctx, wait); err != nil {
				return "", stopped(ctx, r.name, step)
			}
		}
		cctx, ri := withRespInfo(ctx)
		status, err := fetch(cctx)
		_, retryAfter, _ = ri.snapshot()
		if err != nil {
			e, c := classify(ctx, r.name, step, err, ri)
			if (c == classTransient || c == classRateLimited) && errorsInRow < maxPollErrors {
				errorsInRow++
				r.log.Debug("poll failed, retrying", "step", step, "error", e)
				continue
			}
			return "", wrapClass(e, c)
		}
		errorsInRow, last = 0, status
		if !slices.Contains(waitOn, status) {
			return status, nil
		}
	}
}

// nextWait returns the wait before poll number attempt (0-based): none for
// the first, then the CA's Retry-After if it sent one, else base doubled per
// attempt up to max.
func nextWait(attempt int, retryAfter, base, max time.Duration) time.Duration {
	if attempt == 0 {
		return 0
	}
	if retryAfter > 0 {
		return retryAfter
	}
	d := base
	for n := 1; n < attempt && d < max; n++ {
		d *= 2
	}
	return min(d, max)
}

// cleanUp withdraws every presented challenge response, then calls then
// (if not nil). With the caller's ctx ended, remote clean-ups (DNS-01) run
// in the background, and then runs after them.
func (r *orderRun) cleanUp(ctx context.Context, then func()) {
	var bg []func(context.Context)
	for _, p := range r.presented {
		do := func(cctx context.Context) {
			if err := p.solver.provider.CleanUp(cctx, p.ident, p.chal.Token, p.keyAuth); err != nil {
				r.log.Warn("challenge clean-up failed", "type", p.solver.typ, "domain", p.domain, "error", err)
			}
			if p.solver.typ == challenge.DNS01 {
				r.i.ours.remove(p.value)
			}
		}
		if p.solver.typ == challenge.DNS01 {
			if ctx.Err() != nil {
				bg = append(bg, do)
				continue
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.i.cfg.CleanupTimeout)
			do(cctx)
			cancel()
			continue
		}
		do(context.WithoutCancel(ctx)) // local: token map or webroot file
	}
	r.presented = nil
	if then == nil {
		then = func() {}
	}
	if len(bg) == 0 {
		then()
		return
	}
	if !r.i.background(func(cctx context.Context) {
		defer then()
		for _, do := range bg {
			do(cctx)
		}
	}) {
		then()
	}
}

// deactivate deactivates the authorizations still pending, so that a failed
// order does not leave them open at the CA (best effort).
func (r *orderRun) deactivate(ctx context.Context) {
	if len(r.pending) == 0 {
		return
	}
	urls := slices.Sorted(maps.Keys(r.pending))
	r.pending = nil
	do := func(cctx context.Context) {
		for _, u := range urls {
			if err := r.core.Authorizations.Deactivate(cctx, u); err != nil {
				r.log.Debug("deactivating authorization failed", "authorization", u, "error", err)
			}
		}
	}
	if ctx.Err() != nil {
		r.i.background(do)
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.i.cfg.CleanupTimeout)
	defer cancel()
	do(cctx)
}

// parseLeaf parses the first certificate of a PEM bundle.
func parseLeaf(certPEM []byte) (*x509.Certificate, error) {
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no certificate in PEM")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// sameIdentifiers compares journaled domains with an order's identifiers,
// ignoring order, duplicates and the differences renew.CanonicalName
// removes (case, a trailing dot, IP address spelling).
func sameIdentifiers(domains []string, ids []acme.Identifier) bool {
	a := make([]string, 0, len(domains))
	for _, d := range domains {
		a = append(a, renew.CanonicalName(d))
	}
	slices.Sort(a)
	a = slices.Compact(a)
	b := identValues(ids)
	for i := range b {
		b[i] = renew.CanonicalName(b[i])
	}
	slices.Sort(b)
	b = slices.Compact(b)
	return slices.Equal(a, b)
}

func identValues(ids []acme.Identifier) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, id.Value)
	}
	return out
}
