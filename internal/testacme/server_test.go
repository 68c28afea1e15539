package testacme_test

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/challenge/tlsalpn01"
	"github.com/go-acme/lego/v5/registration"
	"github.com/miekg/dns"

	"github.com/renewkit/renewkit/internal/testacme"
)

func TestRenewalWindow(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{AlwaysValid: true})
	c := newClient(t, s)
	if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
		t.Fatal(err)
	}
	res, err := obtain(t.Context(), c, "default", names(1)...)
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, res)
	now := time.Now()

	ri, err := c.Certificate.GetRenewalInfo(t.Context(), leaf)
	if err != nil {
		t.Fatalf("GetRenewalInfo: %v", err)
	}
	if ri.ShouldRenewAt(now, time.Hour) != nil {
		t.Fatalf("fresh 90-day certificate due now: window %+v", ri.SuggestedWindow)
	}

	start, end := now.Add(-2*time.Hour).Truncate(time.Second), now.Add(-time.Hour).Truncate(time.Second)
	if err := s.SetRenewalWindow(leaf, start, end); err != nil {
		t.Fatal(err)
	}
	ri, err = c.Certificate.GetRenewalInfo(t.Context(), leaf)
	if err != nil {
		t.Fatalf("GetRenewalInfo: %v", err)
	}
	if !ri.SuggestedWindow.Start.Equal(start) || !ri.SuggestedWindow.End.Equal(end) {
		t.Errorf("window %v..%v, want %v..%v", ri.SuggestedWindow.Start, ri.SuggestedWindow.End, start, end)
	}
	if at := ri.ShouldRenewAt(now, 0); at == nil {
		t.Errorf("ShouldRenewAt = nil for a past window")
	}

	// Malformed answers can be served too, and "" restores Pebble's own.
	if err := s.SetRenewalInfo(leaf, "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Certificate.GetRenewalInfo(t.Context(), leaf); err == nil {
		t.Error("GetRenewalInfo accepted a malformed body")
	}
	if err := s.SetRenewalInfo(leaf, ""); err != nil {
		t.Fatal(err)
	}
	if ri, err = c.Certificate.GetRenewalInfo(t.Context(), leaf); err != nil || !ri.SuggestedWindow.Start.After(now) {
		t.Errorf("after reset: %v, %+v", err, ri)
	}

	other := leafOf(t, res)
	other.SerialNumber.SetInt64(12345)
	if err := s.SetRenewalWindow(other, start, end); err == nil {
		t.Error("SetRenewalWindow for an unknown certificate succeeded")
	}
}

func TestProfiles(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{AlwaysValid: true, Profiles: map[string]time.Duration{
		"tenseconds":  10 * time.Second,
		"fiveminutes": 5 * time.Minute,
	}})
	c := newClient(t, s)
	if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
		t.Fatal(err)
	}
	offered := c.GetServerMetadata().Profiles
	if len(offered) != 4 {
		t.Errorf("offered profiles %v, want 4", offered)
	}
	tests := []struct {
		profile  string
		lifetime time.Duration
	}{
		{"default", testacme.DefaultLifetime},
		{"shortlived", testacme.ShortLivedLifetime},
		{"fiveminutes", 5 * time.Minute},
		{"tenseconds", 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			res, err := obtain(t.Context(), c, tt.profile, names(1)...)
			if err != nil {
				t.Fatal(err)
			}
			leaf := leafOf(t, res)
			// Pebble sets NotAfter = NotBefore + lifetime - 1 s (inclusive end).
			if got := leaf.NotAfter.Sub(leaf.NotBefore); got != tt.lifetime-time.Second {
				t.Errorf("NotAfter-NotBefore = %v, want %v", got, tt.lifetime-time.Second)
			}
		})
	}
	_, err := obtain(t.Context(), c, "nosuch", names(1)...)
	var pd *acme.ProblemDetails
	if !errors.As(err, &pd) || pd.Type != acme.InvalidProfileErrorType {
		t.Errorf("unknown profile: err = %v, want invalidProfile", err)
	}
}

func TestProfileOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		profiles map[string]time.Duration
		wantErr  string // "" = starts
	}{
		{"nil: built-ins", nil, ""},
		{"remove one", map[string]time.Duration{"shortlived": 0}, ""},
		{"override", map[string]time.Duration{"default": time.Hour}, ""},
		{"remove all", map[string]time.Duration{"default": 0, "shortlived": 0}, "no profile left"},
		{"sub-second", map[string]time.Duration{"x": 1500 * time.Millisecond}, "whole number of seconds"},
		{"negative", map[string]time.Duration{"x": -time.Minute}, "whole number of seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := testacme.Start(testacme.Options{Profiles: tt.profiles})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				_ = s.Close()
				t.Fatalf("Start succeeded, want error %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestEAB(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{RequireEAB: true})
	kid, key := s.EABKey()
	if kid == "" || key == "" {
		t.Fatal("no EAB key generated")
	}
	c, _ := newUnregisteredClient(t, s)
	if !c.GetServerMetadata().ExternalAccountRequired {
		t.Error("directory does not say externalAccountRequired")
	}
	_, err := c.Registration.Register(t.Context(), registrationOptions())
	var pd *acme.ProblemDetails
	if !errors.As(err, &pd) || pd.Type != acme.ExternalAccountRequiredErrorType {
		t.Fatalf("Register without EAB: %v, want externalAccountRequired", err)
	}
	if _, err := c.Registration.RegisterWithExternalAccountBinding(t.Context(), registration.RegisterEABOptions{
		TermsOfServiceAgreed: true, Kid: kid, HmacEncoded: key,
	}); err != nil {
		t.Fatalf("Register with EAB: %v", err)
	}
}

func registrationOptions() registration.RegisterOptions {
	return registration.RegisterOptions{TermsOfServiceAgreed: true}
}

func TestTLSALPN01(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{})
	c := newClient(t, s)
	host, port, _ := net.SplitHostPort(s.TLSALPN01Addr())
	if err := c.Challenge.SetTLSALPN01Provider(tlsalpn01.NewProviderServer(host, port)); err != nil {
		t.Fatal(err)
	}
	if _, err := obtain(t.Context(), c, "default", names(1)...); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
}

// TestParallelServers: servers with different settings side by side; each
// gets its own (AlwaysValid must not leak from one to the other).
func TestParallelServers(t *testing.T) {
	t.Parallel()
	for _, alwaysValid := range []bool{true, false, true, false} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			s := startServer(t, testacme.Options{AlwaysValid: alwaysValid})
			c := newClient(t, s)
			if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
				t.Fatal(err)
			}
			_, err := obtain(t.Context(), c, "default", names(1)...)
			if alwaysValid && err != nil {
				t.Fatalf("AlwaysValid server: %v", err)
			}
			var pd *acme.ProblemDetails
			if !alwaysValid && !errors.As(err, &pd) {
				// Nothing serves the token: validation must fail.
				t.Fatalf("validating server issued without a token served: %v", err)
			}
		})
	}
}

// TestEnvironmentRestored: Start leaves the process environment as it was.
// Not parallel: it sets environment variables.
func TestEnvironmentRestored(t *testing.T) {
	t.Setenv("PEBBLE_AUTHZREUSE", "77")
	t.Setenv("PEBBLE_VA_ALWAYS_VALID", "") // restored after the test
	os.Unsetenv("PEBBLE_VA_ALWAYS_VALID")
	startServer(t, testacme.Options{AlwaysValid: true})
	if got := os.Getenv("PEBBLE_AUTHZREUSE"); got != "77" {
		t.Errorf("PEBBLE_AUTHZREUSE = %q, want 77", got)
	}
	if _, set := os.LookupEnv("PEBBLE_VA_ALWAYS_VALID"); set {
		t.Error("PEBBLE_VA_ALWAYS_VALID left set")
	}
}

func TestDNSResponder(t *testing.T) {
	t.Parallel()
	d, err := testacme.StartDNS()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.AddTXT("_acme-challenge.Example.Test", "one")
	d.AddTXT("_acme-challenge.example.test.", "two")
	d.AddTXT("_acme-challenge.example.test", "two") // no duplicate
	long := strings.Repeat("x", 300)
	d.SetTXT("long.example.test", long)

	tests := []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"any.name.example", dns.TypeA, []string{"127.0.0.1"}},
		{"any.name.example", dns.TypeAAAA, nil},
		{"_acme-challenge.example.test", dns.TypeTXT, []string{"one", "two"}},
		{"long.example.test", dns.TypeTXT, []string{long}},
		{"none.example.test", dns.TypeTXT, nil},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			if got := query(t, network, d.Addr(), tt.name, tt.qtype); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("%s %s %s = %q, want %q", network, tt.name, dns.TypeToString[tt.qtype], got, tt.want)
			}
		}
	}
	d.RemoveTXT("_acme-challenge.example.test", "one")
	if got := d.TXT("_acme-challenge.example.test"); len(got) != 1 || got[0] != "two" {
		t.Errorf("after RemoveTXT: %q", got)
	}
	d.SetTXT("_acme-challenge.example.test")
	if got := d.TXT("_acme-challenge.example.test"); len(got) != 0 {
		t.Errorf("after SetTXT(): %q", got)
	}
}

func query(t *testing.T, network, addr, name string, qtype uint16) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	in, _, err := (&dns.Client{Net: network, Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", network, name, err)
	}
	if in.Rcode != dns.RcodeSuccess {
		t.Fatalf("%s query %s: rcode %s", network, name, dns.RcodeToString[in.Rcode])
	}
	var out []string
	for _, rr := range in.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.TXT:
			out = append(out, strings.Join(rr.Txt, ""))
		default:
			out = append(out, rr.String())
		}
	}
	return out
}

// TestHTTP01PortReserved: the reserved port can be bound by the client's
// solver while the server holds it.
func TestHTTP01PortReserved(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{})
	for range 2 {
		ln, err := net.Listen("tcp", s.HTTP01Addr())
		if err != nil {
			t.Fatalf("listen on HTTP01Addr: %v", err)
		}
		ln.Close()
	}
}

func TestNewHelper(t *testing.T) {
	t.Parallel()
	s := testacme.New(t, testacme.Options{AlwaysValid: true, Logger: testacme.TBLogger(t)})
	if !strings.HasPrefix(s.DirectoryURL(), "https://127.0.0.1:") {
		t.Errorf("DirectoryURL = %q", s.DirectoryURL())
	}
	if _, err := os.Stat(s.CAFile()); err != nil {
		t.Errorf("CAFile: %v", err)
	}
	if len(s.Roots()) != 1 {
		t.Errorf("Roots: %d", len(s.Roots()))
	}
}

// TestCloseReleasesEverything starts a server, issues through every part of
// it, closes it and checks what is left: no listener, no file, and exactly
// one goroutine, Pebble's VA task loop (documented leak). Not parallel:
// it counts the process's goroutines.
func TestCloseReleasesEverything(t *testing.T) {
	before := vaLoops()
	baseline := runtime.NumGoroutine()

	s, err := testacme.Start(testacme.Options{ServeHTTP01: true})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s)
	if err := c.Challenge.SetHTTP01Provider(s.HTTP01Provider()); err != nil {
		t.Fatal(err)
	}
	if _, err := obtain(t.Context(), c, "default", names(2)...); err != nil {
		t.Fatal(err)
	}
	addrs := []string{strings.TrimSuffix(strings.TrimPrefix(s.DirectoryURL(), "https://"), "/dir"), s.DNSAddr(), s.HTTP01Addr()}
	caFile := s.CAFile()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, a := range addrs {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections", a)
		}
	}
	if _, err := os.Stat(caFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CAFile still there: %v", err)
	}
	// lego's idle connections were closed by the server; give the client's
	// connection goroutines a moment to notice.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for runtime.NumGoroutine() > baseline+1 {
		if ctx.Err() != nil {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after Close, want +1:\n%s",
				baseline, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := vaLoops() - before; got != 1 {
		t.Errorf("Pebble VA loops left: %d, want 1", got)
	}
	t.Logf("goroutines: %d before Start, %d after Close (Pebble's VA loop)", baseline, runtime.NumGoroutine())
}

func vaLoops() int {
	buf := make([]byte, 1<<20)
	return runningIn(string(buf[:runtime.Stack(buf, true)]), "va.VAImpl.processTasks")
}

// runningIn counts the goroutines of a runtime.Stack dump that are inside
// function fn (a frame "…fn(…)"), not those fn merely started ("created by
// …fn in goroutine N"): Pebble's VA loop starts a goroutine per validation,
// and those must not count as loops.
func runningIn(dump, fn string) int {
	n := 0
	for g := range strings.SplitSeq(dump, "\n\n") {
		for line := range strings.SplitSeq(g, "\n") {
			if !strings.HasPrefix(line, "created by ") && strings.Contains(line, fn+"(") {
				n++
				break
			}
		}
	}
	return n
}

func TestRunningInSkipsCreatedBy(t *testing.T) {
	dump := `goroutine 7 [select]:
github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks({0x1, 0x2})
	/mod/pebble/va/va.go:187 +0x45
created by github.com/letsencrypt/pebble/v2/va.New in goroutine 1
	/mod/pebble/va/va.go:170 +0x99

goroutine 9 [IO wait]:
net.(*conn).Read(0xc0)
	/go/net/net.go:1 +0x1
github.com/letsencrypt/pebble/v2/va.VAImpl.process({0x1})
	/mod/pebble/va/va.go:200 +0x2
created by github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks in goroutine 7
	/mod/pebble/va/va.go:188 +0x3
`
	if got := runningIn(dump, "va.VAImpl.processTasks"); got != 1 {
		t.Fatalf("runningIn = %d, want 1 (the loop, not the validation it started)", got)
	}
}
