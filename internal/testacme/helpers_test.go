package testacme_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/registration"

	"github.com/renewkit/renewkit/internal/testacme"
)

type user struct {
	key crypto.Signer
	reg *acme.ExtendedAccount
}

func (u *user) GetEmail() string                       { return "" }
func (u *user) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *user) GetPrivateKey() crypto.Signer           { return u.key }

// newClient returns a lego client for s, tuned as the package documentation
// advises, with a registered account.
func newClient(tb testing.TB, s *testacme.Server) *lego.Client {
	tb.Helper()
	c, u := newUnregisteredClient(tb, s)
	reg, err := c.Registration.Register(context.Background(), registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		tb.Fatalf("register: %v", err)
	}
	u.reg = reg
	return c
}

func newUnregisteredClient(tb testing.TB, s *testacme.Server) (*lego.Client, *user) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	u := &user{key: key}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = s.DirectoryURL()
	cfg.HTTPClient = s.HTTPClient()
	cfg.Certificate = lego.CertificateConfig{Timeout: 3 * time.Second, OverallRequestLimit: 1000}
	c, err := lego.NewClient(cfg)
	if err != nil {
		tb.Fatalf("lego.NewClient: %v", err)
	}
	tb.Cleanup(func() { cfg.HTTPClient.CloseIdleConnections() })
	return c, u
}

var nameSeq atomic.Int64

// names returns n fresh names under example.test.
func names(n int) []string {
	id := nameSeq.Add(1)
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("h%d-%d.example.test", i, id)
	}
	return out
}

func obtain(ctx context.Context, c *lego.Client, profile string, domains ...string) (*certificate.Resource, error) {
	return c.Certificate.Obtain(ctx, certificate.ObtainRequest{
		Domains: domains,
		KeyType: certcrypto.EC256,
		Bundle:  false,
		Profile: profile,
	})
}

func leafOf(tb testing.TB, res *certificate.Resource) *x509.Certificate {
	tb.Helper()
	certs, err := certcrypto.ParsePEMBundle(res.Certificate)
	if err != nil {
		tb.Fatalf("parse certificate: %v", err)
	}
	return certs[0]
}

// verifyChain checks that res chains to one of s's roots for its names.
func verifyChain(tb testing.TB, s *testacme.Server, res *certificate.Resource) *x509.Certificate {
	tb.Helper()
	leaf := leafOf(tb, res)
	inter := x509.NewCertPool()
	issuers, err := certcrypto.ParsePEMBundle(res.IssuerCertificate)
	if err != nil {
		tb.Fatalf("parse issuer: %v", err)
	}
	for _, c := range issuers {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: s.RootPool(), Intermediates: inter, DNSName: res.Domains[0]}); err != nil {
		tb.Fatalf("verify chain: %v", err)
	}
	return leaf
}

func startServer(tb testing.TB, opts testacme.Options) *testacme.Server {
	tb.Helper()
	s, err := testacme.Start(opts)
	if err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// newCore returns a low-level ACME client with a registered account.
func newCore(tb testing.TB, s *testacme.Server) *api.Core {
	tb.Helper()
	c, u := newUnregisteredClient(tb, s)
	reg, err := c.Registration.Register(context.Background(), registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		tb.Fatalf("register: %v", err)
	}
	hc := s.HTTPClient()
	tb.Cleanup(hc.CloseIdleConnections)
	core, err := api.New(hc, "testacme-test", s.DirectoryURL(), reg.Location, u.key)
	if err != nil {
		tb.Fatalf("api.New: %v", err)
	}
	return core
}
