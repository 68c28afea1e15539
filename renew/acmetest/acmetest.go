package acmetest

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// Options configures a CA. The zero value is a CA that validates challenges
// for real, offers the "default" and "shortlived" profiles and logs nothing.
type Options struct {
	// Profiles adds ACME profiles, name → certificate lifetime (whole
	// seconds, at least one), to the built-in "default" (90 days) and
	// "shortlived" (6 days). An entry named like a built-in replaces it; a
	// lifetime of 0 removes that profile. Nil: the two built-ins.
	Profiles map[string]time.Duration

	// AlwaysValid makes every challenge valid without a validation request:
	// nothing needs to listen and names need not resolve. False: HTTP-01,
	// TLS-ALPN-01 and DNS-01 are validated for real over loopback.
	AlwaysValid bool

	// Webroot, when set, makes the CA serve HTTP-01 tokens from the files
	// under Webroot/.well-known/acme-challenge/ on [CA.HTTP01Addr], as a web
	// server serving Webroot would; [CA.IssuerConfig] then uses
	// acmeissuer.HTTP01.Webroot. The directory must exist. Empty: tokens
	// are served by whoever listens on HTTP01Addr.
	Webroot string

	// Logger receives the CA's log records (Pebble's own and the test
	// server's). Nil: nothing is logged.
	Logger *slog.Logger
}

// CA is a running in-process ACME certificate authority. All methods are
// safe for concurrent use; the accessors stay valid after Close.
type CA struct {
	s           *testacme.Server
	webroot     string
	alwaysValid bool
	files       *http.Server // nil unless Options.Webroot
}

// TB is the part of testing.TB that [New] uses; *testing.T and *testing.B
// satisfy it (an interface keeps package testing out of programs that start
// a CA outside tests, such as a demo mode).
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// New starts a CA for a test or benchmark, fails t if it cannot start, and
// closes it in t.Cleanup (a Close error fails t too).
func New(t TB, opts Options) *CA {
	t.Helper()
	ca, err := Start(opts)
	if err != nil {
		t.Fatalf("acmetest: %v", err)
	}
	t.Cleanup(func() {
		if err := ca.Close(); err != nil {
			t.Fatalf("acmetest: %v", err)
		}
	})
	return ca
}

// Start starts a CA on 127.0.0.1. Close it when done.
func Start(opts Options) (*CA, error) {
	if opts.Webroot != "" {
		if fi, err := os.Stat(opts.Webroot); err != nil {
			return nil, fmt.Errorf("acmetest: Options.Webroot: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("acmetest: Options.Webroot %s is not a directory", opts.Webroot)
		}
	}
	s, err := testacme.Start(testacme.Options{
		AlwaysValid: opts.AlwaysValid,
		Profiles:    opts.Profiles,
		Logger:      opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	ca := &CA{s: s, webroot: opts.Webroot, alwaysValid: opts.AlwaysValid}
	if opts.Webroot != "" {
		if err := ca.serveWebroot(); err != nil {
			return nil, errors.Join(err, s.Close())
		}
	}
	return ca, nil
}

// serveWebroot serves Webroot's challenge directory on HTTP01Addr.
func (ca *CA) serveWebroot() error {
	ln, err := net.Listen("tcp4", ca.s.HTTP01Addr())
	if err != nil {
		return fmt.Errorf("acmetest: serve webroot %s: %w", ca.webroot, err)
	}
	const prefix = "/.well-known/acme-challenge/"
	mux := http.NewServeMux()
	mux.Handle("GET "+prefix, http.FileServer(http.Dir(ca.webroot)))
	ca.files = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ca.files.Serve(ln) }()
	return nil
}

// Close stops the CA: its listeners (open connections are closed), its DNS
// responder and the webroot server, and removes its temporary file. It waits
// for requests in progress (at most 10 s). Idempotent; later calls return
// the first result.
func (ca *CA) Close() error {
	var errs []error
	if ca.files != nil {
		if err := ca.files.Close(); err != nil {
			errs = append(errs, fmt.Errorf("acmetest: webroot server: %w", err))
		}
	}
	errs = append(errs, ca.s.Close())
	return errors.Join(errs...)
}

// DirectoryURL returns the ACME directory URL, https://127.0.0.1:PORT/dir.
func (ca *CA) DirectoryURL() string { return ca.s.DirectoryURL() }

// TLSRoots returns a new pool holding the certificate of the CA's HTTPS
// endpoint, for acmeissuer.Config.CARoots (or a tls.Config's RootCAs).
func (ca *CA) TLSRoots() *x509.CertPool { return ca.s.CertPool() }

// TLSRootsPEM returns the certificate of the CA's HTTPS endpoint,
// PEM-encoded, for acmeissuer.Config.CARootsPEM or a file a configuration
// names (such as renew-certificates' ca_file).
func (ca *CA) TLSRootsPEM() []byte { return ca.s.CAPEM() }

// ChainRoots returns a new pool of the roots every certificate this CA
// issues chains to: for renew.Renewer.Roots, or x509.VerifyOptions.Roots
// when a test client checks what your server serves.
func (ca *CA) ChainRoots() *x509.CertPool { return ca.s.RootPool() }

// ChainRootsPEM returns the roots of [CA.ChainRoots], PEM-encoded, for a
// renewal subprocess (a child a test kills, say) to verify against.
func (ca *CA) ChainRootsPEM() []byte {
	var out []byte
	for _, c := range ca.s.Roots() {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// HTTP01Addr returns "127.0.0.1:PORT", where the CA fetches HTTP-01 tokens
// (every name resolves to 127.0.0.1). Whatever answers HTTP-01 in the test
// listens here.
func (ca *CA) HTTP01Addr() string { return ca.s.HTTP01Addr() }

// TLSALPN01Addr returns "127.0.0.1:PORT", where the CA connects for
// TLS-ALPN-01; use it as acmeissuer.TLSALPN01.Addr.
func (ca *CA) TLSALPN01Addr() string { return ca.s.TLSALPN01Addr() }

// DNS01 returns a new DNS-01 configuration whose provider publishes TXT
// records on the CA's DNS responder and whose propagation check asks that
// responder. It works for any name, wildcards included.
func (ca *CA) DNS01() *acmeissuer.DNS01 {
	return &acmeissuer.DNS01{
		Provider:            ca.s.DNS01Provider(),
		Resolvers:           []string{ca.s.DNSAddr()},
		PropagationInterval: 5 * time.Millisecond,
	}
}

// IssuerConfig returns an acmeissuer.Config for this CA with its account in
// accountDir (created if missing): the directory URL, trust in the CA's TLS
// certificate (CARoots), AgreeTOS, and HTTP-01 the way this CA is set up to
// check it — the Issuer's built-in listener on HTTP01Addr, or
// HTTP01.Webroot with Options.Webroot, or, with Options.AlwaysValid,
// HTTP01 with neither (nothing listens). Each call returns a new Config.
func (ca *CA) IssuerConfig(accountDir string) acmeissuer.Config {
	cfg := acmeissuer.Config{
		DirectoryURL: ca.DirectoryURL(),
		AgreeTOS:     true,
		AccountDir:   accountDir,
		CARoots:      ca.TLSRoots(),
	}
	switch {
	case ca.webroot != "":
		cfg.HTTP01 = &acmeissuer.HTTP01{Webroot: ca.webroot}
	case ca.alwaysValid:
		cfg.HTTP01 = &acmeissuer.HTTP01{}
	default:
		cfg.HTTP01 = &acmeissuer.HTTP01{Addr: ca.HTTP01Addr()}
	}
	return cfg
}

// Stats counts what the CA did for one set of names, or for all of them.
type Stats struct {
	// Orders is the number of orders the CA created.
	Orders int
	// Issued is the number of certificates it issued.
	Issued int
}

// Stats returns the counters for the certificate whose names are domains
// (order and case do not matter), or the totals over all orders when
// domains is empty. Use it to check that a program orders what it must and
// no more, e.g. that a restart after a crash does not order again.
func (ca *CA) Stats(domains ...string) Stats {
	st := ca.s.Stats(domains...)
	return Stats{Orders: st.Orders, Issued: st.Issued}
}

// SetRenewalWindow makes the CA's renewal information (ARI, RFC 9773) for
// leaf, a certificate this CA issued, suggest renewing within [start, end).
// A window in the past means "renew now": a renew.Renewer then renews leaf
// whatever its expiry policy says, on the first run that fetches the window.
// A Renewer fetches it on the first run after an issuance, then once per
// renew.Renewer.ARIInterval (6 h by default): set the window before that
// run, or advance the Renewer's clock (renew.Renewer.Now).
func (ca *CA) SetRenewalWindow(leaf *x509.Certificate, start, end time.Time) error {
	return ca.s.SetRenewalWindow(leaf, start, end)
}
