package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// issuers routes each certificate to an acmeissuer.Issuer set up with its
// challenge. acmeissuer solves every order of one Issuer the same way, and
// certificates may be validated differently (one by webroot, another by
// DNS), so there is one Issuer per distinct challenge configuration; they
// share the ACME account (one AccountDir, which acmeissuer locks).
type issuers struct {
	byName    map[string]*acmeissuer.Issuer
	byDomains map[string]*acmeissuer.Issuer
	all       []*acmeissuer.Issuer
}

var (
	_ renew.Issuer        = (*issuers)(nil)
	_ renew.Resumer       = (*issuers)(nil)
	_ renew.RenewalInfoer = (*issuers)(nil)
)

// newIssuers builds the issuers certs need. It contacts no CA (acmeissuer
// connects on first use), but it reads the CA file, the EAB key and builds
// the DNS providers, so missing credentials fail here.
func newIssuers(ctx context.Context, cfg *Config, certs []CertConfig, log *slog.Logger) (*issuers, error) {
	base := acmeissuer.Config{
		DirectoryURL: cfg.DirectoryURL,
		Email:        cfg.Email,
		AgreeTOS:     cfg.AgreeTOS,
		AccountDir:   cfg.AccountDir,
		UserAgent:    "renewkit-renew-certificates",
		Logger:       log.With("component", "acme"),
	}
	if cfg.EAB != nil {
		h, err := cfg.EAB.hmacKey()
		if err != nil {
			return nil, err
		}
		base.EAB = &acmeissuer.EAB{KeyID: cfg.EAB.KeyID, HMAC: h}
	}
	if cfg.CAFile != "" {
		hc, err := httpClientTrusting(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		base.HTTPClient = hc
	}
	is := &issuers{byName: map[string]*acmeissuer.Issuer{}, byDomains: map[string]*acmeissuer.Issuer{}}
	groups := map[string]*acmeissuer.Issuer{}
	rfc := map[string]*rfc2136Provider{}
	for _, c := range certs {
		k := c.Challenge.key()
		iss, ok := groups[k]
		if !ok {
			ic := base
			if err := setChallenge(&ic, c.Challenge, cfg.Root); err != nil {
				is.Close()
				return nil, fmt.Errorf("certificate %q: %w", c.Name, err)
			}
			var err error
			if ic.DNS01 != nil {
				rfc[k], _ = ic.DNS01.Provider.(*rfc2136Provider)
			}
			iss, err = acmeissuer.New(ctx, ic)
			if err != nil {
				is.Close()
				return nil, fmt.Errorf("certificate %q: %w", c.Name, err)
			}
			groups[k] = iss
			is.all = append(is.all, iss)
		}
		is.byName[c.Name] = iss
		if rp := rfc[k]; rp != nil {
			rp.domains = append(rp.domains, c.Domains...) // for its Preflight
		}
		is.byDomains[domainsKey(c.Domains)] = iss
	}
	return is, nil
}

// dnsLockDir is the directory of the DNS-01 record-name locks under the
// storage root, shared by every run on this machine (see
// acmeissuer.DNS01.LockDir).
const dnsLockDir = ".dns-locks"

// setChallenge configures ic for c; root is the storage root.
func setChallenge(ic *acmeissuer.Config, c ChallengeConfig, root string) error {
	switch c.Type {
	case challengeHTTP01:
		ic.HTTP01 = &acmeissuer.HTTP01{Addr: c.Listen, Webroot: c.Webroot}
	case challengeTLSALPN01:
		ic.TLSALPN01 = &acmeissuer.TLSALPN01{Addr: c.Listen}
	case challengeDNS01:
		p, err := providerWithEnv(c.Provider, c.Env)
		if err != nil {
			return fmt.Errorf("dns-01 provider %s: %w", c.Provider, err)
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

// httpClientTrusting returns an HTTPClient func whose clients trust the
// system roots and the PEM certificates in caFile.
func httpClientTrusting(caFile string) (func() *http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", caFile)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return func() *http.Client {
		return &http.Client{Transport: base.Clone(), Timeout: 30 * time.Second}
	}, nil
}

func domainsKey(ds []string) string {
	n := make([]string, len(ds))
	for i, d := range ds {
		n[i] = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	}
	slices.Sort(n)
	return strings.Join(n, ",")
}

// Issue implements renew.Issuer with the certificate's own issuer.
func (is *issuers) Issue(ctx context.Context, req renew.IssueRequest, journal renew.OrderJournal) (*renew.Issued, error) {
	iss, ok := is.byName[req.Name]
	if !ok {
		return nil, backoff.Permanent(fmt.Errorf("no ACME issuer configured for certificate %q", req.Name))
	}
	return iss.Issue(ctx, req, journal)
}

// Resume implements renew.Resumer. Any of the issuers can poll an order of
// the shared account; the one configured for the order's names is used
// when there is one.
func (is *issuers) Resume(ctx context.Context, rec renew.InFlight) (*renew.Issued, error) {
	iss, ok := is.byDomains[domainsKey(rec.Domains)]
	if !ok {
		if len(is.all) == 0 {
			return nil, backoff.Permanent(errors.New("no ACME issuer configured"))
		}
		iss = is.all[0]
	}
	return iss.Resume(ctx, rec)
}

// RenewalInfo implements renew.RenewalInfoer (ARI needs no account).
func (is *issuers) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (expiry.Window, error) {
	if len(is.all) == 0 {
		return expiry.Window{}, errors.ErrUnsupported
	}
	return is.all[0].RenewalInfo(ctx, leaf)
}

// Close closes every issuer.
func (is *issuers) Close() error {
	var errs []error
	for _, iss := range is.all {
		errs = append(errs, iss.Close())
	}
	return errors.Join(errs...)
}
