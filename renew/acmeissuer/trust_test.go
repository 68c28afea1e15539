package acmeissuer

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

// TestCARootsPEMRejected: CARootsPEM must be certificates only, at least one;
// a key pasted by mistake is named by its block type, never echoed.
func TestCARootsPEMRejected(t *testing.T) {
	const keyBody = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
	tests := []struct {
		name string
		pem  string
		want string
	}{
		{"no PEM at all", "not a certificate\n", "no PEM block"},
		{"private key", "-----BEGIN PRIVATE KEY-----\n" + keyBody + "\n-----END PRIVATE KEY-----\n", `block 1 is a "PRIVATE KEY" block`},
		{"certificate that does not parse", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "block 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(t.Context(), Config{
				DirectoryURL: "https://ca.test/dir",
				AccountDir:   t.TempDir(),
				HTTP01:       &HTTP01{},
				CARootsPEM:   []byte(tt.pem),
			})
			ce, ok := errors.AsType[*renew.ConfigError](err)
			if !errors.Is(err, renew.ErrConfig) || !ok || ce.Field != "CARootsPEM" || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v; want renew.ErrConfig and a ConfigError for CARootsPEM containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), keyBody) {
				t.Errorf("error %q echoes the PEM contents", err)
			}
		})
	}
}

func TestCARootsWithHTTPClientRejected(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	for name, mod := range map[string]func(*Config){
		"pool": func(c *Config) { c.CARoots = ca.CertPool() },
		"PEM":  func(c *Config) { c.CARootsPEM = caPEM(t, ca) },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := fastConfig(t, ca) // sets HTTPClient
			mod(&cfg)
			if _, err := New(t.Context(), cfg); !errors.Is(err, renew.ErrConfig) || !strings.Contains(err.Error(), "not both") {
				t.Fatalf("New: %v; want renew.ErrConfig saying not both", err)
			}
		})
	}
}

// TestCARootsTrusted issues through the default client with the test CA's
// TLS certificate trusted by each form of the option; without it the same
// configuration fails on the CA's certificate. A CARoots pool without the
// CA's certificate, plus CARootsPEM with it, must trust it too (the PEM
// adds to the pool), and the caller's pool must not be modified.
func TestCARootsTrusted(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	unrelated := x509.NewCertPool()
	tests := []struct {
		name    string
		mod     func(*Config)
		trusted bool
	}{
		{"system roots only", func(*Config) {}, false},
		{"CARoots", func(c *Config) { c.CARoots = ca.CertPool() }, true},
		{"CARootsPEM on the system roots", func(c *Config) { c.CARootsPEM = caPEM(t, ca) }, true},
		{"CARootsPEM on CARoots", func(c *Config) { c.CARoots, c.CARootsPEM = unrelated, caPEM(t, ca) }, true},
		{"CARoots without the CA", func(c *Config) { c.CARoots = unrelated }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fastConfig(t, ca)
			cfg.HTTPClient = nil
			tt.mod(&cfg)
			iss := newTestIssuer(t, cfg)
			if !tt.trusted {
				err := iss.Connect(t.Context())
				var unknown x509.UnknownAuthorityError
				if !errors.As(err, &unknown) {
					t.Fatalf("Connect: %v; want x509.UnknownAuthorityError", err)
				}
				return
			}
			names := []string{domain("trust")}
			got, _ := issue(t, iss, renew.IssueRequest{Domains: names, Profile: "default"})
			verifyChain(t, ca, got)
		})
	}
	if !unrelated.Equal(x509.NewCertPool()) {
		t.Error("the caller's CARoots pool was modified")
	}
}

// caPEM returns the PEM of the test CA's TLS certificate, after a comment
// line, as bundle files have.
func caPEM(t *testing.T, ca *testacme.Server) []byte {
	t.Helper()
	b, err := os.ReadFile(ca.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: not a PEM certificate", filepath.Base(ca.CAFile()))
	}
	return append([]byte("# test CA endpoint\n"), b...)
}

// TestCARootsCopied: New takes a copy of CARoots; adding to the caller's
// pool afterwards does not change what the Issuer trusts.
func TestCARootsCopied(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	pool := x509.NewCertPool()
	cfg := fastConfig(t, ca)
	cfg.HTTPClient, cfg.CARoots = nil, pool
	iss := newTestIssuer(t, cfg)
	pool.AppendCertsFromPEM(caPEM(t, ca))
	var unknown x509.UnknownAuthorityError
	if err := iss.Connect(t.Context()); !errors.As(err, &unknown) {
		t.Fatalf("Connect: %v; want x509.UnknownAuthorityError (the pool was added to after New)", err)
	}
}
