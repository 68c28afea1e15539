package acmetest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// fakeTB records what New does with its TB.
type fakeTB struct {
	cleanups []func()
	fatal    string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
}

// TestNewClosesInCleanup: the CA New returns answers until the test's
// clean-up runs, and not after.
func TestNewClosesInCleanup(t *testing.T) {
	tb := &fakeTB{}
	ca := acmetest.New(tb, acmetest.Options{})
	if tb.fatal != "" || len(tb.cleanups) != 1 {
		t.Fatalf("New: fatal %q, %d clean-ups; want none and one", tb.fatal, len(tb.cleanups))
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(ca)}}
	resp, err := client.Get(ca.DirectoryURL())
	if err != nil {
		t.Fatalf("directory before clean-up: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("directory: HTTP %d", resp.StatusCode)
	}
	client.CloseIdleConnections()
	tb.cleanups[0]()
	if tb.fatal != "" {
		t.Fatalf("clean-up failed the test: %s", tb.fatal)
	}
	if resp, err := client.Get(ca.DirectoryURL()); err == nil {
		resp.Body.Close()
		t.Fatal("the CA still answers after the test's clean-up")
	}
	if err := ca.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

func TestStartRejectsMissingWebroot(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := acmetest.Start(acmetest.Options{Webroot: missing})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "Webroot") {
		t.Fatalf("Start: %v; want a not-exist error naming Webroot", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := acmetest.Start(acmetest.Options{Webroot: file}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Start with a file as Webroot: %v; want an error saying not a directory", err)
	}
}

// TestTLSRootsPEM: the PEM form of the CA's trust works where a private
// CA's bundle file would be used (acmeissuer.Config.CARootsPEM).
func TestTLSRootsPEM(t *testing.T) {
	ca := acmetest.New(t, acmetest.Options{AlwaysValid: true})
	cfg := ca.IssuerConfig(t.TempDir())
	cfg.CARoots, cfg.CARootsPEM = nil, ca.TLSRootsPEM()
	iss, err := acmeissuer.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	if err := iss.Connect(t.Context()); err != nil {
		t.Fatalf("Connect trusting TLSRootsPEM: %v", err)
	}
}

// TestAlwaysValidManyIssuers: with AlwaysValid, IssuerConfig binds no
// listener, so parallel Issuers (one per parallel test) share one CA.
func TestAlwaysValidManyIssuers(t *testing.T) {
	ca := acmetest.New(t, acmetest.Options{AlwaysValid: true})
	if h := ca.IssuerConfig(t.TempDir()).HTTP01; h == nil || h.Addr != "" || h.Webroot != "" {
		t.Fatalf("IssuerConfig HTTP01 = %+v, want neither Addr nor Webroot", h)
	}
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			iss, err := acmeissuer.New(t.Context(), ca.IssuerConfig(t.TempDir()))
			if err != nil {
				errs <- err
				return
			}
			defer iss.Close()
			r := &renew.Renewer{Root: t.TempDir(), Issuer: iss, Roots: ca.ChainRoots()}
			name := fmt.Sprintf("p%d.example.test", i)
			if res := r.Run(context.Background(), renew.Certificate{Name: "c", Domains: []string{name}, Profile: "default"})[0]; res.Outcome != renew.Renewed {
				errs <- fmt.Errorf("%s: outcome %s: %w", name, res.Outcome, res.Err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := ca.Stats(); st.Issued != n {
		t.Errorf("issued %d, want %d", st.Issued, n)
	}
}

func tlsConfig(ca *acmetest.CA) *tls.Config {
	return &tls.Config{RootCAs: ca.TLSRoots(), MinVersion: tls.VersionTLS12}
}

// TestChainRootsPEM: the PEM form holds exactly the roots of ChainRoots.
func TestChainRootsPEM(t *testing.T) {
	ca := acmetest.New(t, acmetest.Options{AlwaysValid: true})
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(ca.ChainRootsPEM()) {
		t.Fatal("ChainRootsPEM holds no certificate")
	}
	if !p.Equal(ca.ChainRoots()) {
		t.Error("ChainRootsPEM and ChainRoots differ")
	}
	if p.Equal(ca.TLSRoots()) {
		t.Error("the chain roots equal the TLS roots; they must be the CA's issuing roots")
	}
}

// TestTLSALPN01: the CA validates TLS-ALPN-01 against TLSALPN01Addr, where
// the Issuer's listener answers.
func TestTLSALPN01(t *testing.T) {
	ca := acmetest.New(t, acmetest.Options{})
	cfg := ca.IssuerConfig(t.TempDir())
	cfg.HTTP01, cfg.TLSALPN01 = nil, &acmeissuer.TLSALPN01{Addr: ca.TLSALPN01Addr()}
	iss, err := acmeissuer.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	r := &renew.Renewer{Root: t.TempDir(), Issuer: iss, Roots: ca.ChainRoots()}
	if res := r.Run(t.Context(), renew.Certificate{Name: "alpn", Domains: []string{"alpn.example.test"}, Profile: "default"})[0]; res.Outcome != renew.Renewed {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Err)
	}
}
