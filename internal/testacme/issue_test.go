package testacme_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/challenge/http01"

	"github.com/renewkit/renewkit/internal/testacme"
)

// TestHTTP01ClientSolver: the VA fetches the token from the client's own
// HTTP-01 server (lego's, binding HTTP01Addr per challenge) over loopback.
func TestHTTP01ClientSolver(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{})
	c := newClient(t, s)
	host, port, _ := net.SplitHostPort(s.HTTP01Addr())
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer(host, port)); err != nil {
		t.Fatal(err)
	}
	domains := names(2)
	res, err := obtain(t.Context(), c, "default", domains...)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	leaf := verifyChain(t, s, res)
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < testacme.DefaultLifetime-time.Minute || got > testacme.DefaultLifetime {
		t.Errorf("lifetime %v, want ≈ %v", got, testacme.DefaultLifetime)
	}
	if st := s.Stats(domains...); st.Orders != 1 || st.Issued != 1 || st.MaxConcurrentOrders != 1 {
		t.Errorf("Stats = %+v, want 1 order, 1 issued, max 1 concurrent", st)
	}
}

// TestHTTP01TokenServer: the built-in token server answers instead.
func TestHTTP01TokenServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{ServeHTTP01: true})
	c := newClient(t, s)
	if err := c.Challenge.SetHTTP01Provider(s.HTTP01Provider()); err != nil {
		t.Fatal(err)
	}
	res, err := obtain(t.Context(), c, "shortlived", names(3)...)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	verifyChain(t, s, res)
}

func TestHTTP01ProviderWithoutTokenServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{})
	err := s.HTTP01Provider().Present(context.Background(), "a.example.test", "tok", "tok.ka")
	if err != testacme.ErrNoTokenServer {
		t.Fatalf("Present = %v, want ErrNoTokenServer", err)
	}
}

// TestDNS01 validates a wildcard and its base name for real: both TXT values
// on one name, the VA and lego's propagation check both asking the loopback
// responder.
func TestDNS01(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{DNS: sharedDNS})
	c := newClient(t, s)
	if err := c.Challenge.SetDNS01Provider(s.DNS01Provider(),
		dns01.DisableAuthoritativeNssPropagationRequirement()); err != nil {
		t.Fatal(err)
	}
	base := names(1)[0]
	res, err := obtain(t.Context(), c, "default", "*."+base, base)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	leaf := verifyChain(t, s, res)
	if len(leaf.DNSNames) != 2 {
		t.Errorf("DNSNames = %v", leaf.DNSNames)
	}
	if got := sharedDNS.TXT("_acme-challenge." + base); len(got) != 0 {
		t.Errorf("TXT records left after CleanUp: %v", got)
	}
}

// TestDNS01NoPropagationCheck: a server with its own responder; lego skips
// its check (the process-wide client would not see this responder's records).
func TestDNS01NoPropagationCheck(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{})
	c := newClient(t, s)
	if err := c.Challenge.SetDNS01Provider(s.DNS01Provider(), dns01.PropagationWait(0, true)); err != nil {
		t.Fatal(err)
	}
	if _, err := obtain(t.Context(), c, "default", names(1)...); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
}

func TestAlwaysValid(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{AlwaysValid: true})
	c := newClient(t, s)
	// A provider that serves nothing: validation must not need it.
	if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
		t.Fatal(err)
	}
	if _, err := obtain(t.Context(), c, "default", names(2)...); err != nil {
		t.Fatalf("Obtain: %v", err)
	}
}

type nopProvider struct{}

func (nopProvider) Present(context.Context, string, string, string) error { return nil }
func (nopProvider) CleanUp(context.Context, string, string, string) error { return nil }

// TestRenewReplacesRace renews with ARI `replaces` along a chain and twice
// for the same predecessor (the second gets alreadyReplaced, which lego
// answers by ordering again without `replaces`), several rounds. Under -race
// this is where Pebble's unlocked read of the predecessor's "replaced" flag
// (newOrder) meets the write by its asynchronous finalize goroutine; without
// the middleware's ordering the race detector reports it (not every run:
// it needs the read soon after the write).
func TestRenewReplacesRace(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{AlwaysValid: true})
	c := newClient(t, s)
	if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
		t.Fatal(err)
	}
	renew := func(res *certificate.Resource) *certificate.Resource {
		t.Helper()
		out, err := c.Certificate.Renew(t.Context(), *res, &certificate.RenewOptions{
			Profile: "default", UseARICertID: true,
		})
		if err != nil {
			t.Fatalf("Renew: %v", err)
		}
		return out
	}
	const rounds = 8
	for range rounds {
		domains := names(1)
		first, err := obtain(t.Context(), c, "default", domains...)
		if err != nil {
			t.Fatalf("Obtain: %v", err)
		}
		second := renew(first) // replaces first
		renew(first)           // first again: 409 alreadyReplaced, then lego orders without replaces
		renew(second)          // replaces second
		st := s.Stats(domains...)
		if st.Orders != 4 || st.Issued != 4 || st.Replacing != 2 || st.MaxConcurrentOrders != 1 {
			t.Fatalf("Stats = %+v, want 4 orders, 4 issued, 2 replacing, max 1 concurrent", st)
		}
	}
}
