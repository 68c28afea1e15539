package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/go-acme/lego/v5/challenge"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/internal/safefile"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// issuers routes each certificate to an acmeissuer.Issuer set up with its
// challenge. acmeissuer solves every order of one Issuer the same way, and
// certificates may be validated differently (one by webroot, another by
// DNS), so there is one Issuer per distinct challenge configuration (a
// group); they share the ACME account (one AccountDir, which acmeissuer
// locks).
type issuers struct {
	cfg    *config
	byName map[string]*group
	all    []*group
}

// group is one challenge configuration and its Issuer.
type group struct {
	ic acmeissuer.Config
	// iss is nil in a dry run (nothing is built that could order) and when
	// err is set.
	iss *acmeissuer.Issuer
	// err is the local problem (an unwritable account directory, a missing
	// webroot) that kept the Issuer from being built: every certificate of
	// the group that is due fails with it, without contacting the CA.
	err error
	// ipath locates the challenge table in the file.
	ipath string
}

var (
	_ renew.Issuer        = (*issuers)(nil)
	_ renew.Resumer       = (*issuers)(nil)
	_ renew.RenewalInfoer = (*issuers)(nil)
	_ renew.Preflighter   = (*issuers)(nil)
)

// newIssuers builds the issuers certs need. It contacts no CA (acmeissuer
// connects on first use), but it reads the CA file, the EAB key and builds
// the DNS providers, so missing credentials fail here, as configuration
// errors (*configProblem, joined, every one found). With dry set it builds
// no acmeissuer.Issuer (which would create the account directory): the
// result can only Preflight.
//
// A group whose Issuer cannot be built because of this machine (the
// account directory or the webroot) is kept with that error, so that the
// run reports it, with its fix, for the certificates that are due.
func newIssuers(ctx context.Context, cfg *config, certs []certConfig, log *slog.Logger, dry bool) (*issuers, error) {
	base := acmeissuer.Config{
		DirectoryURL: cfg.DirectoryURL,
		Email:        cfg.Email,
		AgreeTOS:     cfg.AgreeTOS,
		AccountDir:   cfg.AccountDir,
		UserAgent:    "renewkit-renew-certificates",
		Logger:       log.With("component", "acme"),
	}
	var errs []error
	if cfg.EAB != nil {
		h, err := cfg.EAB.hmacKey()
		if err != nil {
			errs = append(errs, cfg.configError("eab", "%v", err))
		}
		base.EAB = &acmeissuer.EAB{KeyID: cfg.EAB.KeyID, HMAC: h}
	}
	if cfg.CAFile != "" {
		// Trusted in addition to the system roots.
		pem, err := safefile.ReadFileFollow(cfg.CAFile, maxSecretFileSize)
		if err != nil {
			errs = append(errs, cfg.configError("ca_file", "%v", err))
		}
		base.CARootsPEM = pem
	}
	if !cfg.AgreeTOS && !base.HasAccount() {
		errs = append(errs, cfg.configError("agree_tos",
			"agree_tos is not set and no ACME account exists yet in %s: read the terms of service of the CA (%s) and set agree_tos = true, or pass -agree-tos once",
			cfg.AccountDir, cfg.DirectoryURL))
	}
	is := &issuers{cfg: cfg, byName: map[string]*group{}}
	groups := map[string]*group{}
	rfc := map[string]*rfc2136Provider{}
	for _, c := range certs {
		k := c.Challenge.key()
		g, ok := groups[k]
		if !ok {
			g = &group{ic: base, ipath: c.Challenge.ipath}
			if err := setChallenge(&g.ic, c.Challenge, cfg.Root); err != nil {
				errs = append(errs, cfg.configError(c.Challenge.ipath+".provider",
					"certificate %q: challenge: %v (set the provider's variables in this challenge's env table, VAR_FILE for secrets, or in the service's environment)", c.Name, err))
				continue
			}
			if g.ic.DNS01 != nil {
				rfc[k], _ = g.ic.DNS01.Provider.(*rfc2136Provider)
			}
			groups[k] = g
			is.all = append(is.all, g)
		}
		is.byName[c.Name] = g
		if rp := rfc[k]; rp != nil {
			rp.domains = append(rp.domains, c.Domains...) // for its Preflight
		}
	}
	if len(errs) > 0 {
		if dry {
			return is, errors.Join(errs...) // the rest can still be checked
		}
		return nil, errors.Join(errs...)
	}
	if dry {
		return is, nil
	}
	for _, g := range is.all {
		iss, err := acmeissuer.New(ctx, g.ic)
		if errors.Is(err, acmeissuer.ErrCARootsPEM) {
			is.Close()
			return nil, fmt.Errorf("ca_file %s: %w", cfg.CAFile, err)
		}
		if err != nil {
			// acmeissuer speaks of its own fields (AccountDir,
			// HTTP01.Webroot); the preflight says the same in terms of
			// paths and fixes.
			perr := g.ic.Preflight(ctx)
			if perr == nil || !errors.Is(err, acmeissuer.ErrConfig) {
				is.Close()
				return nil, inCLITerms(err)
			}
			g.err = perr
			continue
		}
		g.iss = iss
	}
	return is, nil
}

// dnsLockDir is the directory of the DNS-01 record-name locks under the
// storage root, shared by every run on this machine (see
// acmeissuer.DNS01.LockDir).
const dnsLockDir = ".dns-locks"

// setChallenge configures ic for c; root is the storage root.
func setChallenge(ic *acmeissuer.Config, c challengeConfig, root string) error {
	switch c.Type {
	case challengeHTTP01:
		ic.HTTP01 = &acmeissuer.HTTP01{Addr: c.Listen, Webroot: c.Webroot}
	case challengeTLSALPN01:
		ic.TLSALPN01 = &acmeissuer.TLSALPN01{Addr: c.Listen}
	case challengeDNS01:
		var p challenge.Provider
		if info, ok := lookupDNSProvider(c.Provider); ok && info.New != nil {
			p = newLazyProvider(info, c.Env) // built when a challenge is solved
		} else {
			var err error
			p, err = providerWithEnv(c.Provider, c.Env)
			if err != nil {
				return fmt.Errorf("dns-01 provider %s: %w", c.Provider, err)
			}
		}
		ic.DNS01 = &acmeissuer.DNS01{
			Provider:             p,
			Resolvers:            c.Resolvers,
			SkipPropagationCheck: c.SkipPropagationCheck,
			PropagationDelay:     c.PropagationDelay,
			PropagationTimeout:   c.PropagationTimeout,
			LockDir:              filepath.Join(root, dnsLockDir),
		}
	default:
		return fmt.Errorf("unknown challenge type %q", c.Type)
	}
	return nil
}

// Issue implements renew.Issuer with the certificate's own issuer.
func (is *issuers) Issue(ctx context.Context, req renew.IssueRequest, journal func(ctx context.Context, rec renew.InFlight) error) (*renew.Issued, error) {
	g, ok := is.byName[req.Name]
	switch {
	case !ok:
		return nil, backoff.Permanent(fmt.Errorf("no ACME issuer configured for certificate %q", req.Name))
	case g.err != nil:
		return nil, is.locate(g, req.Name, g.err)
	case g.iss == nil:
		return nil, backoff.Permanent(errors.New("a dry run orders nothing"))
	}
	iss, err := g.iss.Issue(ctx, req, journal)
	return iss, inCLITerms(err)
}

// Preflight implements renew.Preflighter: the group's problem, or its
// Issuer's checks (its Config's in a dry run), located in the file.
func (is *issuers) Preflight(ctx context.Context, req renew.IssueRequest) error {
	g, ok := is.byName[req.Name]
	if !ok {
		return nil
	}
	var err error
	switch {
	case g.err != nil:
		err = g.err
	case g.iss != nil:
		err = g.iss.Preflight(ctx, req)
	default:
		err = g.ic.Preflight(ctx)
	}
	return is.locate(g, req.Name, err)
}

// locate prefixes each problem in err (one, or several joined) with the
// place in the configuration file that configures it: the challenge
// table's key for a webroot or listen address, the account_dir key for the
// account directory.
func (is *issuers) locate(g *group, name string, err error) error {
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		ipath := g.ipath
		msg := e.Error()
		switch {
		case strings.HasPrefix(msg, "account directory"):
			ipath = "account_dir"
		case strings.HasPrefix(msg, "webroot"):
			ipath += ".webroot"
		case strings.Contains(msg, "listen address"):
			ipath += ".listen"
		case strings.HasPrefix(msg, "DNS provider"):
			ipath += ".provider"
		}
		out = append(out, fmt.Errorf("%s: certificate %q: %w", is.cfg.where(ipath), name, e))
	}
	return errors.Join(out...)
}

// Resume implements renew.Resumer. Any of the issuers can poll an order of
// the shared account; the one configured for the order's lineage
// (rec.Name) is used when there is one.
func (is *issuers) Resume(ctx context.Context, rec renew.InFlight) (*renew.Issued, error) {
	if g, ok := is.byName[rec.Name]; ok && g.iss != nil {
		iss, err := g.iss.Resume(ctx, rec)
		return iss, inCLITerms(err)
	}
	for _, g := range is.all {
		if g.iss != nil {
			iss, err := g.iss.Resume(ctx, rec)
			return iss, inCLITerms(err)
		}
	}
	for _, g := range is.all {
		if g.err != nil {
			return nil, g.err
		}
	}
	return nil, backoff.Permanent(errors.New("no ACME issuer configured"))
}

// RenewalInfo implements renew.RenewalInfoer (ARI needs no account).
func (is *issuers) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (expiry.Window, error) {
	for _, g := range is.all {
		if g.iss != nil {
			return g.iss.RenewalInfo(ctx, leaf)
		}
	}
	return expiry.Window{}, errors.ErrUnsupported
}

// Close closes every issuer.
func (is *issuers) Close() error {
	var errs []error
	for _, g := range is.all {
		if g.iss != nil {
			errs = append(errs, g.iss.Close())
		}
	}
	return errors.Join(errs...)
}
