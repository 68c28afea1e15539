package testacme

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge"
)

// http01Prefix is the path prefix of HTTP-01 tokens (RFC 8555 section 8.3).
const http01Prefix = "/.well-known/acme-challenge/"

// tokenServer answers HTTP-01 requests from a token map. It serves a token
// any number of times (Pebble's VA fetches it once per perspective, three
// times) and many tokens at once, so concurrent orders share it.
type tokenServer struct {
	ln  net.Listener
	srv *http.Server

	mu     sync.RWMutex
	tokens map[string]string // token → key authorization
}

func startTokenServer(addr string, errLog *log.Logger) (*tokenServer, error) {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("testacme: HTTP-01 token server: %w", err)
	}
	t := &tokenServer{ln: ln, tokens: make(map[string]string)}
	t.srv = &http.Server{Handler: t, ErrorLog: errLog, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()
	return t, nil
}

func (t *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, http01Prefix)
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	t.mu.RLock()
	keyAuth, ok := t.tokens[token]
	t.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(keyAuth))
}

func (t *tokenServer) close() error {
	if err := t.srv.Close(); err != nil {
		return fmt.Errorf("HTTP-01 token server: %w", err)
	}
	return nil
}

// ErrNoTokenServer is returned by the Present method of
// [Server.HTTP01Provider] when the server was started without
// Options.ServeHTTP01.
var ErrNoTokenServer = errors.New("testacme: HTTP01Provider needs Options.ServeHTTP01")

// HTTP01Provider returns a lego challenge.Provider that serves HTTP-01
// tokens from the server's built-in token server on HTTP01Addr. It needs
// Options.ServeHTTP01 (Present fails with [ErrNoTokenServer] otherwise). It
// is the alternative to a client's own solver listening on HTTP01Addr, for
// tests that do not exercise one; it supports any number of concurrent
// orders. Register it with client.Challenge.SetHTTP01Provider.
func (s *Server) HTTP01Provider() challenge.Provider { return http01Provider{s} }

type http01Provider struct{ s *Server }

func (p http01Provider) Present(_ context.Context, _, token, keyAuth string) error {
	t := p.s.tokens
	if t == nil {
		return ErrNoTokenServer
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tokens[token] = keyAuth
	return nil
}

func (p http01Provider) CleanUp(_ context.Context, _, token, _ string) error {
	t := p.s.tokens
	if t == nil {
		return ErrNoTokenServer
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.tokens, token)
	return nil
}

// DNS01Provider returns a lego challenge.Provider that publishes DNS-01 TXT
// records on the server's DNS responder (adding its value, removing only its
// own on CleanUp, so a wildcard and its base name coexist). It does not look
// up CNAMEs. It implements challenge.ProviderTimeout with a 5 ms polling
// interval (lego sleeps one interval before its first propagation check).
//
// lego's own DNS-01 code still resolves: it follows CNAMEs and checks
// propagation through its process-wide client, which by default reads
// /etc/resolv.conf (off-host traffic). Point it at this server's responder
// (see [DNSResponder]) or disable both (dns01.PropagationWait(0, true) and
// LEGO_DISABLE_CNAME_SUPPORT=true); testacme never touches that global.
func (s *Server) DNS01Provider() challenge.ProviderTimeout { return dns01Provider{s.dns} }

type dns01Provider struct{ d *DNSResponder }

func (p dns01Provider) Present(_ context.Context, domain, _, keyAuth string) error {
	name, value := dns01Record(domain, keyAuth)
	p.d.AddTXT(name, value)
	return nil
}

func (p dns01Provider) CleanUp(_ context.Context, domain, _, keyAuth string) error {
	name, value := dns01Record(domain, keyAuth)
	p.d.RemoveTXT(name, value)
	return nil
}

func (p dns01Provider) Timeout() (timeout, interval time.Duration) {
	return 10 * time.Second, 5 * time.Millisecond
}

// dns01Record returns the TXT record name and value for a DNS-01 challenge
// (RFC 8555 section 8.4).
func dns01Record(domain, keyAuth string) (name, value string) {
	sum := sha256.Sum256([]byte(keyAuth))
	return "_acme-challenge." + strings.TrimPrefix(domain, "*.") + ".",
		base64.RawURLEncoding.EncodeToString(sum[:])
}
