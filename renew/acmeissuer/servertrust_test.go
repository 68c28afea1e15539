package acmeissuer

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

// TestUntrustedServerIsLocal: roots that did not sign the CA's TLS
// certificate make the first contact fail at once with a *renew.LocalError
// (no retry, no CA backoff) that names where the roots came from; the CA
// sees no order.
func TestUntrustedServerIsLocal(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	other := startCA(t, testacme.Options{AlwaysValid: true}) // another CA's roots
	cfg := fastConfig(t, ca)
	cfg.HTTPClient = nil
	cfg.CARootsPEM = caPEM(t, other)
	cfg.CARootsSource = "ca_file /etc/x.pem (c.toml:3)"
	iss := newTestIssuer(t, cfg)
	start := time.Now()
	_, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "a", Domains: []string{"a.example.test"}, Key: mustKey(t, renew.EC256)}, (&memJournal{}).journal)
	if !errors.Is(err, errServerTrust) || !errors.Is(err, renew.ErrLocal) || !errors.Is(err, backoff.ErrPermanent) {
		t.Fatalf("Issue: %v; want errServerTrust, renew.ErrLocal and permanent", err)
	}
	for _, want := range []string{"ca_file /etc/x.pem (c.toml:3)", "nor by the system's", ca.DirectoryURL()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v, want a prompt failure", took)
	}
	if n := ca.Stats().Orders; n != 0 {
		t.Errorf("the CA saw %d orders", n)
	}
}

// TestCheckServer: the dry run's one GET of the directory tells a trusted
// server, an untrusted one, and one that does not answer.
func TestCheckServer(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	other := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := Config{DirectoryURL: ca.DirectoryURL(), CARootsPEM: caPEM(t, ca)}
	if err := cfg.CheckServer(t.Context()); err != nil {
		t.Errorf("trusted: %v", err)
	}
	cfg.CARootsPEM = caPEM(t, other)
	if err := cfg.CheckServer(t.Context()); !errors.Is(err, errServerTrust) || !errors.Is(err, renew.ErrLocal) {
		t.Errorf("untrusted: %v; want errServerTrust", err)
	}
	cfg.CARootsPEM = nil
	if err := cfg.CheckServer(t.Context()); !errors.Is(err, errServerTrust) || !strings.Contains(err.Error(), "the system roots do not trust") {
		t.Errorf("untrusted by the system roots: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg.DirectoryURL = "https://" + addr + "/dir"
	if err := cfg.CheckServer(t.Context()); !errors.Is(err, errServerUnreachable) || !errors.Is(err, renew.ErrLocal) ||
		!strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "HTTPS_PROXY") {
		t.Errorf("nothing listening: %v; want a local error naming %s and what to check", err, addr)
	}
}
