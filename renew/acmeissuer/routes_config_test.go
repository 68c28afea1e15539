package acmeissuer

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/renew"
)

// TestConfigErrorField: every configuration error names its field in a
// *renew.ConfigError (a CLI maps it to its own key with a table), routes
// included, and still matches renew.ErrConfig.
func TestConfigErrorField(t *testing.T) {
	dir := t.TempDir()
	base := func() Config {
		return Config{DirectoryURL: "https://ca.test/dir", AccountDir: filepath.Join(dir, "acct"), HTTP01: &HTTP01{}}
	}
	for _, tt := range []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"no directory", func(c *Config) { c.DirectoryURL = "" }, "DirectoryURL"},
		{"http directory", func(c *Config) { c.DirectoryURL = "http://ca.test/dir" }, "DirectoryURL"},
		{"no account dir", func(c *Config) { c.AccountDir = "" }, "AccountDir"},
		{"bad email", func(c *Config) { c.Email = "mailto:a@b" }, "Email"},
		{"eab half", func(c *Config) { c.EAB = &EAB{KeyID: "k"} }, "EAB"},
		{"eab hmac", func(c *Config) { c.EAB = &EAB{KeyID: "k", HMAC: "!!"} }, "EAB.HMAC"},
		{"ca roots pem", func(c *Config) { c.CARootsPEM = []byte("nothing") }, "CARootsPEM"},
		{"no challenge", func(c *Config) { c.HTTP01 = nil }, "HTTP01"},
		{"missing webroot", func(c *Config) { c.HTTP01 = &HTTP01{Webroot: filepath.Join(dir, "nope")} }, "HTTP01.Webroot"},
		{"bad addr", func(c *Config) { c.HTTP01 = &HTTP01{Addr: "nope"} }, "HTTP01.Addr"},
		{"alpn addr", func(c *Config) { c.TLSALPN01 = &TLSALPN01{} }, "TLSALPN01.Addr"},
		{"dns provider", func(c *Config) { c.DNS01 = &DNS01{} }, "DNS01.Provider"},
		{"rfc2136 nameserver", func(c *Config) { c.DNS01 = &DNS01{Provider: &RFC2136{}} }, "DNS01.Provider.Nameserver"},
		{"rfc2136 algorithm", func(c *Config) {
			c.Routes = map[string]Challenges{"w": {DNS01: &DNS01{Provider: &RFC2136{Nameserver: "ns", TSIGKey: "k", TSIGSecret: "s", TSIGAlgorithm: "md5"}}}}
		}, `Routes["w"].DNS01.Provider.TSIGAlgorithm`},
		{"rfc2136 key without secret", func(c *Config) { c.DNS01 = &DNS01{Provider: &RFC2136{Nameserver: "ns", TSIGKey: "k"}} }, "DNS01.Provider.TSIGSecret"},
		{"empty route", func(c *Config) { c.Routes = map[string]Challenges{"www": {}} }, `Routes["www"].HTTP01`},
		{"route dns provider", func(c *Config) { c.Routes = map[string]Challenges{"www": {DNS01: &DNS01{}}} }, `Routes["www"].DNS01.Provider`},
		{"route addr", func(c *Config) { c.Routes = map[string]Challenges{"www": {HTTP01: &HTTP01{Addr: "x"}}} }, `Routes["www"].HTTP01.Addr`},
		{"one address, two types", func(c *Config) {
			c.HTTP01 = &HTTP01{Addr: "127.0.0.1:0"}
			c.Routes = map[string]Challenges{"www": {TLSALPN01: &TLSALPN01{Addr: "127.0.0.1:0"}}}
		}, `Routes["www"].TLSALPN01.Addr`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			iss, err := New(t.Context(), c)
			if err == nil {
				iss.Close()
				t.Fatal("New accepted it")
			}
			ce, ok := errors.AsType[*renew.ConfigError](err)
			if !ok || ce.Field != tt.field || !errors.Is(err, renew.ErrConfig) {
				t.Errorf("New: %v (%#v), want renew.ErrConfig with a *renew.ConfigError for %s", err, ce, tt.field)
			}
		})
	}
	// Routes alone, without a default, are a configuration.
	c := base()
	c.HTTP01 = nil
	c.Routes = map[string]Challenges{"www": {HTTP01: &HTTP01{}}}
	iss, err := New(t.Context(), c)
	if err != nil {
		t.Fatalf("New with routes only: %v", err)
	}
	iss.Close()
}

// TestAPIProviderCredentialsRefused: a DNS provider's API answering 401 or
// 403 is a local failure naming the provider and the configured fix,
// never retried; a 5xx stays transient.
func TestAPIProviderCredentialsRefused(t *testing.T) {
	for _, tt := range []struct {
		status int
		local  bool
	}{{http.StatusUnauthorized, true}, {http.StatusForbidden, true}, {http.StatusInternalServerError, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", tt.status)
		}))
		t.Cleanup(srv.Close)
		cfg := httpreq.NewDefaultConfig()
		cfg.Endpoint = mustURL(t, srv.URL)
		p, err := httpreq.NewDNSProviderConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		d := &DNS01{Provider: p, ProviderName: "httpreq", CredentialsFix: "check HTTPREQ_USERNAME and HTTPREQ_PASSWORD"}
		r := &orderRun{rt: &route{ch: Challenges{DNS01: d}}, name: "c"}
		pr := &presented{domain: "a.example.test", solver: solver{typ: challenge.DNS01, provider: p}}
		err = r.presentFailed(t.Context(), pr, p.Present(t.Context(), "a.example.test", "token", "token.thumb"))
		if got := errors.Is(err, renew.ErrLocal); got != tt.local {
			t.Errorf("HTTP %d: %v, local %v, want %v", tt.status, err, got, tt.local)
		}
		if got := backoff.ClassOf(err) == backoff.ClassPermanent; got != tt.local {
			t.Errorf("HTTP %d: %v, permanent %v, want %v", tt.status, err, got, tt.local)
		}
		if tt.local && (!strings.Contains(err.Error(), "DNS-01 provider httpreq: credentials refused") || !strings.Contains(err.Error(), "HTTPREQ_PASSWORD")) {
			t.Errorf("HTTP %d: %v, want the provider and the fix named", tt.status, err)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRouteListenersServeTheirOwnTokens: a route's built-in listener
// answers the tokens of the routes on its address only, so a route whose
// address the CA does not reach fails even while another route's listener
// is bound where the CA looks (the CLI's reload test relies on it).
func TestRouteListenersServeTheirOwnTokens(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	addrA, addrB := free(), free()
	iss, err := New(t.Context(), Config{DirectoryURL: "https://ca.test/dir", AccountDir: t.TempDir(),
		Routes: map[string]Challenges{"a": {HTTP01: &HTTP01{Addr: addrA}}, "b": {HTTP01: &HTTP01{Addr: addrB}}, "c": {HTTP01: &HTTP01{Addr: addrA}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	for _, name := range []string{"a", "b"} {
		if err := iss.Preflight(t.Context(), renew.IssueRequest{Name: name}); err != nil {
			t.Fatalf("Preflight %s: %v", name, err)
		}
	}
	if err := iss.routes["c"].solvers[0].provider.Present(t.Context(), "c.example", "tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}
	get := func(addr string) int {
		resp, err := http.Get("http://" + addr + "/.well-known/acme-challenge/tok")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(addrA); got != http.StatusOK {
		t.Errorf("the listener of routes a and c: %d, want 200", got)
	}
	if got := get(addrB); got != http.StatusNotFound {
		t.Errorf("route b's listener served c's token: %d, want 404", got)
	}
}
