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

// issuers is the run's ACME issuer: one acmeissuer.Issuer whose routes
// (acmeissuer.Config.Routes) are the certificates' challenge tables, with
// each problem located in the configuration file (FILE:LINE of the key).
type issuers struct {
	cfg *config
	ic  acmeissuer.Config
	// iss is nil in a dry run (nothing is built that could order) and when
	// err is set.
	iss *acmeissuer.Issuer
	// err is the local problem (an unwritable account directory) that kept
	// the Issuer from being built: every certificate that is due fails
	// with it, without contacting the CA.
	err error
	// ipath locates each certificate's challenge table in the file.
	ipath map[string]string
}

var (
	_ renew.Issuer        = (*issuers)(nil)
	_ renew.Resumer       = (*issuers)(nil)
	_ renew.RenewalInfoer = (*issuers)(nil)
	_ renew.Preflighter   = (*issuers)(nil)

	_ renew.SharedAccountIssuer = (*issuers)(nil)
)

// SharedAccount implements renew.SharedAccountIssuer: every certificate
// orders with the one account of cfg.AccountDir, which the Renewer shares
// through the fleet. It is the Issuer's own store, so that an adoption of
// the fleet's key takes effect at its next order; without an Issuer (one
// that could not be built: is.err) the account directory's, whose failure
// then fails each certificate naming it.
func (is *issuers) SharedAccount() (string, renew.AccountStore) {
	if is.iss != nil {
		return is.iss.SharedAccount()
	}
	return is.ic.DirectoryURL, &is.ic
}

// newIssuers builds the issuer certs need. It contacts no CA (acmeissuer
// connects on first use), but it reads the CA file, the EAB key and builds
// the DNS providers, so missing credentials fail here, as configuration
// errors (*configProblem, joined, every one found). With dry set it builds
// no acmeissuer.Issuer (which would create the account directory): the
// result can only Preflight.
//
// An Issuer that cannot be built because of this machine (the account
// directory) is kept with that error, so that the run reports it, with its
// fix, for the certificates that are due; a missing webroot fails only its
// own certificates (acmeissuer's routes).
func newIssuers(ctx context.Context, cfg *config, certs []certConfig, log *slog.Logger, dry bool) (*issuers, error) {
	ic := acmeissuer.Config{
		DirectoryURL: cfg.DirectoryURL,
		Email:        cfg.Email,
		AgreeTOS:     cfg.AgreeTOS,
		AccountDir:   cfg.AccountDir,
		UserAgent:    "renewkit-renew-certificates",
		Logger:       log.With("component", "acme"),
		Routes:       make(map[string]acmeissuer.Challenges, len(certs)),
	}
	var errs []error
	if cfg.EAB != nil {
		h, err := cfg.EAB.hmacKey()
		if err != nil {
			errs = append(errs, cfg.configError("eab", "%v", err))
		}
		ic.EAB = &acmeissuer.EAB{KeyID: cfg.EAB.KeyID, HMAC: h}
	}
	if cfg.CAFile != "" {
		// Trusted in addition to the system roots.
		pem, err := safefile.ReadFileFollow(cfg.CAFile, maxSecretFileSize)
		if err != nil {
			errs = append(errs, cfg.configError("ca_file", "ca_file %s: cannot read it: %v", cfg.CAFile, unwrapPath(err)))
		}
		ic.CARootsPEM = pem
		ic.CARootsSource = "ca_file " + cfg.CAFile + " (" + cfg.where("ca_file") + ")"
	}
	if !cfg.AgreeTOS && !ic.HasAccount() {
		errs = append(errs, cfg.configError("agree_tos",
			"agree_tos is not set and no ACME account exists yet in %s: read the terms of service of the CA (%s) and set agree_tos = true, or pass -agree-tos once",
			cfg.AccountDir, cfg.DirectoryURL))
	}
	is := &issuers{cfg: cfg, ipath: make(map[string]string, len(certs))}
	// Certificates with the same challenge table share its Challenges (one
	// DNS provider, one webroot check).
	built := map[string]*acmeissuer.Challenges{}
	for _, c := range certs {
		k := c.Challenge.key()
		ch, ok := built[k]
		if !ok {
			var err error
			if ch, err = challenges(c.Challenge, cfg.Root); err != nil {
				errs = append(errs, cfg.configError(c.Challenge.ipath+".provider",
					"certificate %q: challenge: %v (set the provider's variables in this challenge's env table, VAR_FILE for secrets, or in the service's environment)", c.Name, err))
				continue
			}
			built[k] = ch
		}
		ic.Routes[c.Name] = *ch
		is.ipath[c.Name] = c.Challenge.ipath
	}
	is.ic = ic
	if len(errs) > 0 {
		if dry {
			return is, errors.Join(errs...) // the rest can still be checked
		}
		return nil, errors.Join(errs...)
	}
	if dry {
		return is, nil
	}
	iss, err := acmeissuer.New(ctx, ic)
	ce, _ := errors.AsType[*renew.ConfigError](err)
	switch {
	case ce != nil && ce.Field == "CARootsPEM":
		return nil, fmt.Errorf("ca_file %s: %w", cfg.CAFile, ce.Err)
	case err != nil:
		// acmeissuer names its own fields; the preflight says the same in
		// terms of paths and fixes.
		perr := ic.Preflight(ctx)
		if perr == nil || !errors.Is(err, renew.ErrConfig) {
			return nil, is.inFile(err)
		}
		is.err = perr
		return is, nil
	}
	is.iss = iss
	return is, nil
}

// dnsLockDir is the directory of the DNS-01 record-name locks under the
// storage root, shared by every run on this machine (see
// acmeissuer.DNS01.LockDir).
const dnsLockDir = ".dns-locks"

// challenges returns the acmeissuer challenges of c; root is the storage
// root.
func challenges(c challengeConfig, root string) (*acmeissuer.Challenges, error) {
	switch c.Type {
	case challengeHTTP01:
		return &acmeissuer.Challenges{HTTP01: &acmeissuer.HTTP01{Addr: c.Listen, Webroot: c.Webroot}}, nil
	case challengeTLSALPN01:
		return &acmeissuer.Challenges{TLSALPN01: &acmeissuer.TLSALPN01{Addr: c.Listen}}, nil
	case challengeDNS01:
		var p challenge.Provider
		fix := credentialsFixFor(c.Provider)
		if info, ok := lookupDNSProvider(c.Provider); ok && info.New != nil {
			p = newLazyProvider(info, c.Env) // built when a challenge is solved
		} else {
			var err error
			p, err = providerWithEnv(c.Provider, c.Env)
			if err != nil {
				return nil, fmt.Errorf("dns-01 provider %s: %w", c.Provider, err)
			}
		}
		return &acmeissuer.Challenges{DNS01: &acmeissuer.DNS01{
			Provider:             p,
			ProviderName:         c.Provider,
			CredentialsFix:       fix,
			Resolvers:            c.Resolvers,
			SkipPropagationCheck: c.SkipPropagationCheck,
			PropagationDelay:     c.PropagationDelay,
			PropagationTimeout:   c.PropagationTimeout,
			LockDir:              filepath.Join(root, dnsLockDir),
		}}, nil
	}
	return nil, fmt.Errorf("unknown challenge type %q", c.Type)
}

// Issue implements renew.Issuer.
func (is *issuers) Issue(ctx context.Context, req renew.IssueRequest, journal func(ctx context.Context, rec renew.InFlight) error) (*renew.Issued, error) {
	switch {
	case is.err != nil:
		return nil, is.locate(req.Name, is.err)
	case is.iss == nil:
		return nil, backoff.Permanent(errors.New("a dry run orders nothing"))
	}
	iss, err := is.iss.Issue(ctx, req, journal)
	return iss, inCLITerms(err)
}

// Preflight implements renew.Preflighter: the Issuer's checks for the
// certificate (its route's in a dry run), located in the file.
func (is *issuers) Preflight(ctx context.Context, req renew.IssueRequest) error {
	var err error
	switch {
	case is.err != nil:
		err = is.err
	case is.iss != nil:
		err = is.iss.Preflight(ctx, req)
	default:
		err = is.dryPreflight(ctx, req)
	}
	return is.locate(req.Name, err)
}

// dryPreflight is the Issuer's Preflight for req without an Issuer:
// acmeissuer.Config.Preflight of the certificate's route alone, with its
// DNS provider checked for the certificate's names as an Issuer would.
func (is *issuers) dryPreflight(ctx context.Context, req renew.IssueRequest) error {
	ch, ok := is.ic.Routes[req.Name]
	if !ok {
		return nil
	}
	c := is.ic
	c.Routes = map[string]acmeissuer.Challenges{req.Name: {HTTP01: ch.HTTP01, TLSALPN01: ch.TLSALPN01}}
	errs := []error{c.Preflight(ctx)}
	if d := ch.DNS01; d != nil {
		if p, ok := d.Provider.(interface {
			PreflightNames(context.Context, []string) error
		}); ok {
			if err := p.PreflightNames(ctx, req.Domains); err != nil {
				errs = append(errs, err)
			}
		} else if p, ok := d.Provider.(interface{ Preflight(context.Context) error }); ok {
			if err := p.Preflight(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// locate prefixes each problem in err (one, or several joined) with the
// place in the configuration file that configures it: the challenge
// table's key for a webroot or listen address, the account_dir key for the
// account directory.
func (is *issuers) locate(name string, err error) error {
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
		ipath := is.ipath[name]
		if le, ok := errors.AsType[*renew.LocalError](e); ok {
			switch {
			case strings.HasPrefix(le.What, "account directory"):
				ipath = "account_dir"
			case strings.HasPrefix(le.What, "webroot"):
				ipath += ".webroot"
			case strings.Contains(le.What, "listen address"):
				ipath += ".listen"
			case strings.HasPrefix(le.What, "DNS-01 provider"), strings.HasPrefix(le.What, "rfc2136"):
				ipath += ".provider"
			}
		}
		out = append(out, fmt.Errorf("%s: certificate %q: %w", is.cfg.where(ipath), name, inCLITerms(e)))
	}
	return errors.Join(out...)
}

// inFile puts err, if any, in this program's terms: a configuration error
// of acmeissuer's names the configuration key, located in the file
// (FILE:LINE) when the key is known.
func (is *issuers) inFile(err error) error {
	if err == nil {
		return nil
	}
	ce, ok := errors.AsType[*renew.ConfigError](err)
	if !ok {
		return inCLITerms(err)
	}
	_, ipath, cert := configKey(ce.Field)
	if strings.HasPrefix(ipath, ".") || (ipath == "" && cert != "") {
		ipath = is.ipath[cert] + ipath
	}
	if ipath == "" {
		return inCLITerms(err)
	}
	return fmt.Errorf("%s: %w", is.cfg.where(ipath), inCLITerms(err))
}

// Resume implements renew.Resumer: a journaled order needs no challenge,
// so the one Issuer resumes any certificate's.
func (is *issuers) Resume(ctx context.Context, rec renew.InFlight) (*renew.Issued, error) {
	switch {
	case is.iss != nil:
		iss, err := is.iss.Resume(ctx, rec)
		return iss, inCLITerms(err)
	case is.err != nil:
		return nil, is.err
	}
	return nil, backoff.Permanent(errors.New("no ACME issuer configured"))
}

// RenewalInfo implements renew.RenewalInfoer (ARI needs no account).
func (is *issuers) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (expiry.Window, error) {
	if is.iss != nil {
		return is.iss.RenewalInfo(ctx, leaf)
	}
	return expiry.Window{}, errors.ErrUnsupported
}

// Close closes the issuer.
func (is *issuers) Close() error {
	if is.iss != nil {
		return is.iss.Close()
	}
	return nil
}
