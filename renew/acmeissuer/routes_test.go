package acmeissuer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-acme/lego/v5/challenge"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// countingProvider counts the DNS-01 values presented, by domain.
type countingProvider struct {
	challenge.Provider
	mu sync.Mutex
	n  map[string]int
}

func (p *countingProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	p.mu.Lock()
	p.n[domain]++
	p.mu.Unlock()
	return p.Provider.Present(ctx, domain, token, keyAuth)
}

func (p *countingProvider) count(domain string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[domain]
}

// dieAfterJournal is an Issuer whose orders for one certificate stop
// right after the Renewer journaled them, before finalize, by cancelling
// the run: what a process killed at that instant leaves on disk and at the
// CA (a journaled ready order, no failure recorded).
type dieAfterJournal struct {
	*acmeissuer.Issuer
	name string
	kill context.CancelFunc
}

func (d dieAfterJournal) Issue(ctx context.Context, req renew.IssueRequest, journal func(context.Context, renew.InFlight) error) (*renew.Issued, error) {
	if req.Name != d.name {
		return d.Issuer.Issue(ctx, req, journal)
	}
	return d.Issuer.Issue(ctx, req, func(ctx context.Context, rec renew.InFlight) error {
		if err := journal(ctx, rec); err != nil {
			return err
		}
		d.kill()
		return ctx.Err()
	})
}

// TestRoutesTwoChallengeTypesOneRenewer builds, from the library alone, a
// Renewer whose certificates are validated differently — one by a webroot
// (HTTP-01), one by DNS-01 — with one Issuer (Config.Routes), against the
// public in-process CA. The DNS-01 certificate's order is journaled and
// then abandoned as by a killed process; a new Renewer and Issuer (the
// next process) finish that very order instead of ordering again, and
// every certificate was validated by its own route only. A certificate
// with no route and no default, and one whose webroot is missing, fail
// locally without an order and without stopping the others; the latter is
// issued once its webroot exists, by the same Issuer.
func TestRoutesTwoChallengeTypesOneRenewer(t *testing.T) {
	webroot := t.TempDir()
	ca := acmetest.New(t, acmetest.Options{Webroot: webroot})
	dns := ca.DNS01()
	counter := &countingProvider{Provider: dns.Provider, n: map[string]int{}}
	dns.Provider = counter
	base := t.TempDir()
	cfg := acmeissuer.Config{
		DirectoryURL: ca.DirectoryURL(),
		AgreeTOS:     true,
		AccountDir:   filepath.Join(base, "account"),
		CARoots:      ca.TLSRoots(),
		// No default: every certificate must have its route.
		Routes: map[string]acmeissuer.Challenges{
			"web":    {HTTP01: &acmeissuer.HTTP01{Webroot: webroot}},
			"wild":   {DNS01: dns},
			"broken": {HTTP01: &acmeissuer.HTTP01{Webroot: filepath.Join(base, "no-such-webroot")}},
		},
	}
	certs := []renew.Certificate{
		{Name: "web", Domains: []string{"web.example.test"}},
		{Name: "wild", Domains: []string{"wild.example.test", "*.wild.example.test"}},
		{Name: "broken", Domains: []string{"broken.example.test"}},
		{Name: "unrouted", Domains: []string{"unrouted.example.test"}},
	}
	run := func(ctx context.Context, iss renew.Issuer, certs ...renew.Certificate) map[string]renew.Result {
		t.Helper()
		r := &renew.Renewer{Root: filepath.Join(base, "certs"), Issuer: iss, Roots: ca.ChainRoots()}
		out := map[string]renew.Result{}
		for _, res := range r.Run(ctx, certs...) {
			out[res.Name] = res
		}
		return out
	}

	// The first process: the DNS-01 order dies after the journal point.
	iss, err := acmeissuer.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New with a route whose webroot is missing: %v (only that route's certificates should fail)", err)
	}
	ctx, kill := context.WithCancel(t.Context())
	defer kill()
	res := run(t.Context(), iss, certs[0], certs[2], certs[3])
	for name, r := range run(ctx, dieAfterJournal{iss, "wild", kill}, certs[1]) {
		res[name] = r
	}
	if err := iss.Close(); err != nil {
		t.Fatal(err)
	}
	if r := res["web"]; r.Outcome != renew.Renewed {
		t.Fatalf("web: %s %v, want renewed", r.Outcome, r.Err)
	}
	if r := res["wild"]; r.Outcome != renew.Interrupted {
		t.Fatalf("wild: %s %v, want interrupted after the journal point", r.Outcome, r.Err)
	}
	for _, name := range []string{"broken", "unrouted"} {
		if r := res[name]; r.Outcome != renew.Failed || !errors.Is(r.Err, backoff.ErrPermanent) {
			t.Errorf("%s: %s %v, want a permanent failure", name, r.Outcome, r.Err)
		}
	}
	if r := res["broken"]; !errors.Is(r.Err, renew.ErrLocal) {
		t.Errorf("broken: %v, want a local error naming the webroot", r.Err)
	}
	if st := ca.Stats("wild.example.test", "*.wild.example.test"); st.Orders != 1 || st.Issued != 0 {
		t.Fatalf("wild after the first process: %+v, want one order, nothing issued", st)
	}

	// The next process resumes the journaled order: the same order,
	// finalized now, one certificate.
	iss2, err := acmeissuer.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iss2.Close() })
	// The missing webroot appears (the site is deployed) while the Issuer
	// lives: its certificate is issued without a new Issuer.
	if err := os.Symlink(webroot, filepath.Join(base, "no-such-webroot")); err != nil {
		t.Fatal(err)
	}
	res = run(t.Context(), iss2, certs...)
	if r := res["wild"]; r.Outcome != renew.Recovered && r.Outcome != renew.Renewed {
		t.Fatalf("wild in the next process: %s %v, want the journaled order finished", r.Outcome, r.Err)
	}
	if r := res["web"]; r.Outcome != renew.NotDue {
		t.Errorf("web in the next process: %s %v, want not due", r.Outcome, r.Err)
	}
	if st := ca.Stats("wild.example.test", "*.wild.example.test"); st.Orders != 1 || st.Issued != 1 {
		t.Errorf("wild: %+v, want the one journaled order issued, not a second order", st)
	}
	if r := res["broken"]; r.Outcome != renew.Renewed {
		t.Errorf("broken, its webroot now there: %s %v, want renewed", r.Outcome, r.Err)
	}
	if st := ca.Stats("broken.example.test"); st.Orders != 1 {
		t.Errorf("broken: %d orders, want one (none while its webroot was missing)", st.Orders)
	}
	if r := res["unrouted"]; r.Outcome != renew.Failed {
		t.Errorf("unrouted in the next process: %s %v, want failed", r.Outcome, r.Err)
	}
	if st := ca.Stats("unrouted.example.test"); st.Orders != 0 {
		t.Errorf("unrouted: %d orders, want none (the failure is found before ordering)", st.Orders)
	}

	// Each certificate was validated by its own route: the webroot
	// certificate never touched DNS; the DNS-01 one presented one value
	// per name (the wildcard's is presented for its base name) in the
	// first process, and none when its order was resumed.
	if n := counter.count("web.example.test"); n != 0 {
		t.Errorf("web presented %d DNS-01 values, want 0 (its route is the webroot)", n)
	}
	if n := counter.count("wild.example.test"); n != 2 {
		t.Errorf("wild presented %v, want two DNS-01 values (both names, once)", counter.n)
	}
	for _, name := range []string{"web", "wild", "broken"} {
		if _, err := os.Stat(filepath.Join(base, "certs", name, "fullchain.pem")); err != nil {
			t.Errorf("%s not installed: %v", name, err)
		}
	}
}
