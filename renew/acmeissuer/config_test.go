package acmeissuer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"

	"github.com/renewkit/renewkit/renew"
)

type nopProvider struct{}

func (nopProvider) Present(context.Context, string, string, string) error { return nil }
func (nopProvider) CleanUp(context.Context, string, string, string) error { return nil }

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ok := func() Config {
		return Config{
			DirectoryURL: "https://ca.test/dir",
			AccountDir:   filepath.Join(dir, "account"),
			HTTP01:       &HTTP01{Addr: "127.0.0.1:0"},
		}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no directory", func(c *Config) { c.DirectoryURL = "" }, "DirectoryURL: required"},
		{"http directory", func(c *Config) { c.DirectoryURL = "http://ca.test/dir" }, "https"},
		{"garbage directory", func(c *Config) { c.DirectoryURL = "::" }, "https"},
		{"no account dir", func(c *Config) { c.AccountDir = "" }, "AccountDir"},
		{"mailto email", func(c *Config) { c.Email = "mailto:a@b.org" }, "plain address"},
		{"email without @", func(c *Config) { c.Email = "admin" }, "plain address"},
		{"two emails", func(c *Config) { c.Email = "a@b.org,c@d.org" }, "plain address"},
		{"two emails with ;", func(c *Config) { c.Email = "a@b.org;c" }, "plain address"},
		{"named address", func(c *Config) { c.Email = "Admin <a@b.org>" }, "plain address"},
		{"two @", func(c *Config) { c.Email = "a@b@c.org" }, "plain address"},
		{"no domain", func(c *Config) { c.Email = "admin@" }, "plain address"},
		{"good email", func(c *Config) { c.Email = "admin@example.org" }, ""},
		{"eab without hmac", func(c *Config) { c.EAB = &EAB{KeyID: "kid"} }, "KeyID and HMAC"},
		{"eab bad hmac", func(c *Config) { c.EAB = &EAB{KeyID: "kid", HMAC: "not base64!"} }, "EAB.HMAC"},
		{"eab ok", func(c *Config) { c.EAB = &EAB{KeyID: "kid", HMAC: "c2VjcmV0"} }, ""},
		{"no challenge", func(c *Config) { c.HTTP01 = nil }, "no challenge"},
		{"addr and webroot", func(c *Config) { c.HTTP01 = &HTTP01{Addr: ":80", Webroot: dir} }, "not both"},
		{"bad addr", func(c *Config) { c.HTTP01 = &HTTP01{Addr: "80"} }, "HTTP01.Addr"},
		{"missing webroot", func(c *Config) { c.HTTP01 = &HTTP01{Webroot: filepath.Join(dir, "nope")} }, "HTTP01.Webroot"},
		{"webroot is a file", func(c *Config) { c.HTTP01 = &HTTP01{Webroot: file} }, "not a directory"},
		{"webroot", func(c *Config) { c.HTTP01 = &HTTP01{Webroot: dir} }, ""},
		{"handler mode", func(c *Config) { c.HTTP01 = &HTTP01{} }, ""},
		{"alpn without addr", func(c *Config) { c.HTTP01, c.TLSALPN01 = nil, &TLSALPN01{} }, "TLSALPN01.Addr"},
		{"alpn", func(c *Config) { c.HTTP01, c.TLSALPN01 = nil, &TLSALPN01{Addr: "127.0.0.1:0"} }, ""},
		{"dns without provider", func(c *Config) { c.HTTP01, c.DNS01 = nil, &DNS01{} }, "DNS01.Provider"},
		{"dns empty resolver", func(c *Config) { c.DNS01 = &DNS01{Provider: nopProvider{}, Resolvers: []string{""}} }, "Resolvers"},
		{"dns negative", func(c *Config) { c.DNS01 = &DNS01{Provider: nopProvider{}, PropagationTimeout: -1} }, "negative"},
		{"dns", func(c *Config) { c.DNS01 = &DNS01{Provider: nopProvider{}, Resolvers: []string{"127.0.0.1"}} }, ""},
		{"negative poll", func(c *Config) { c.PollInterval = -time.Second }, "negative"},
		{"poll above max", func(c *Config) { c.PollInterval, c.MaxPollInterval = time.Minute, time.Second }, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok()
			tt.mod(&cfg)
			iss, err := New(t.Context(), cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if err := iss.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				return
			}
			if err == nil {
				iss.Close()
				t.Fatalf("New accepted the configuration, want an error containing %q", tt.want)
			}
			if !errors.Is(err, renew.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want renew.ErrConfig containing %q", err, tt.want)
			}
			if cfg.EAB != nil && cfg.EAB.HMAC != "" && strings.Contains(err.Error(), cfg.EAB.HMAC) {
				t.Errorf("error %q reveals the EAB HMAC", err)
			}
		})
	}
}

func TestNewMakesAccountDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	iss, err := New(t.Context(), Config{DirectoryURL: "https://ca.test/dir", AccountDir: dir, HTTP01: &HTTP01{}})
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("AccountDir mode %v, want 0700", fi.Mode().Perm())
	}
}

// TestSameIdentifiers: a journaled order matches the CA's identifiers
// whatever spelling renew.CanonicalName removes, as everywhere else.
func TestSameIdentifiers(t *testing.T) {
	ids := []acme.Identifier{{Type: "dns", Value: "a.example"}, {Type: "ip", Value: "2001:db8::1"}}
	if !sameIdentifiers([]string{"A.Example.", "2001:DB8:0::1", "a.example"}, ids) {
		t.Error("spellings of the same names do not match")
	}
	if sameIdentifiers([]string{"a.example"}, ids) || sameIdentifiers([]string{"a.example", "2001:db8::2"}, ids) {
		t.Error("different names match")
	}
}
