package acmeissuer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/renew"
)

// checkingProvider is a DNS provider with a Preflight.
type checkingProvider struct {
	nopProvider
	err error
}

func (p checkingProvider) Preflight(context.Context) error { return p.err }

func TestConfigPreflight(t *testing.T) {
	dir := t.TempDir()
	webroot := filepath.Join(dir, "www")
	if err := os.Mkdir(webroot, 0o755); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	base := func() Config {
		return Config{DirectoryURL: "https://ca.test/dir", AccountDir: filepath.Join(dir, "acct")}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // substrings of the error; none means no problem
	}{
		{"webroot", func(c *Config) { c.HTTP01 = &HTTP01{Webroot: webroot} }, nil},
		{"free port", func(c *Config) { c.HTTP01 = &HTTP01{Addr: "127.0.0.1:0"} }, nil},
		{"missing webroot", func(c *Config) { c.HTTP01 = &HTTP01{Webroot: filepath.Join(dir, "nope")} },
			[]string{"webroot " + filepath.Join(dir, "nope"), "does not exist", "fix:"}},
		{"busy port", func(c *Config) { c.HTTP01 = &HTTP01{Addr: busy.Addr().String()} },
			[]string{"listen address " + busy.Addr().String(), "address already in use", "fix:"}},
		{"busy tls-alpn port", func(c *Config) { c.TLSALPN01 = &TLSALPN01{Addr: busy.Addr().String()} },
			[]string{"tls-alpn-01 listen address"}},
		{"account directory is a file", func(c *Config) {
			f := filepath.Join(dir, "file")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			c.AccountDir = filepath.Join(f, "acct")
			c.HTTP01 = &HTTP01{}
		}, []string{"account directory", "not a directory"}},
		{"DNS provider's own check", func(c *Config) {
			c.DNS01 = &DNS01{Provider: checkingProvider{err: errors.New("TSIG key refused")}}
		}, []string{"DNS-01 provider", "TSIG key refused"}},
		{"every problem at once", func(c *Config) {
			c.HTTP01 = &HTTP01{Webroot: filepath.Join(dir, "nope")}
			c.TLSALPN01 = &TLSALPN01{Addr: busy.Addr().String()}
		}, []string{"does not exist", "address already in use"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Preflight(t.Context())
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Preflight: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, renew.ErrLocal) {
				t.Fatalf("Preflight: %v, want a local error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
	// Nothing was left behind: no account directory, no challenge
	// directory, no probe.
	if _, err := os.Stat(filepath.Join(dir, "acct")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Preflight created the account directory: %v", err)
	}
	if ents, _ := os.ReadDir(webroot); len(ents) != 0 {
		t.Errorf("Preflight left %v in the webroot", ents)
	}
}

func TestBusyPortNamesItsHolder(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := Config{DirectoryURL: "https://ca.test/dir", AccountDir: t.TempDir(), HTTP01: &HTTP01{Addr: ln.Addr().String()}}
	err = c.Preflight(t.Context())
	if want := fmt.Sprintf("held by PID %d", os.Getpid()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("want %q in %v", want, err)
	}
}

func TestIssuerPreflightKeepsTheListener(t *testing.T) {
	iss, err := New(t.Context(), Config{DirectoryURL: "https://ca.test/dir", AccountDir: t.TempDir(), HTTP01: &HTTP01{Addr: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	req := renew.IssueRequest{Name: "a", Domains: []string{"a.example"}}
	if err := iss.Preflight(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	// Bound once and kept: a second check (a second certificate of the
	// same Issuer) does not collide with the first.
	if err := iss.Preflight(t.Context(), req); err != nil {
		t.Fatalf("second preflight: %v", err)
	}
	iss.servers[0].mu.Lock()
	bound := iss.servers[0].srv != nil
	iss.servers[0].mu.Unlock()
	if !bound {
		t.Fatal("the challenge listener is not kept after the preflight")
	}
}

func TestDefaultAccountDirAndHasAccount(t *testing.T) {
	got := DefaultAccountDir("/var/lib/renewkit", "https://ca.internal:8443/dir")
	if !strings.HasPrefix(got, "/var/lib/renewkit/.acme/ca.internal_8443-") || got == DefaultAccountDir("/var/lib/renewkit", "https://ca.internal:8443/other") {
		t.Errorf("DefaultAccountDir = %q", got)
	}
	dir := t.TempDir()
	if (&Config{AccountDir: dir}).HasAccount() {
		t.Error("an empty directory holds no account")
	}
	if err := os.WriteFile(filepath.Join(dir, accountKeyFile), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !(&Config{AccountDir: dir}).HasAccount() {
		t.Error("a key without a record is an account (found by its key)")
	}
}
