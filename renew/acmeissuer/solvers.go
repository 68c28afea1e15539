package acmeissuer

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/challenge/tlsalpn01"
	"github.com/miekg/dns"

	"github.com/renewkit/renewkit/renew"
)

// solver is one configured challenge type.
type solver struct {
	typ      challenge.Type
	provider challenge.Provider
}

// route is one set of challenges made ready: the default's, or one of
// Config.Routes. Immutable once built.
type route struct {
	ch Challenges
	// solvers are the configured challenge types in order of preference.
	solvers []solver
	// servers are the built-in listeners its solvers use (shared with the
	// routes that name the same address).
	servers []*lazyServer
	// dnsLocks serialises its DNS-01 record names; nil without DNS01.
	dnsLocks *recordLocks
}

// buildRoutes builds the default route and those of Config.Routes. The
// listeners and the DNS-01 record locks are shared between routes that
// name the same address or lock directory.
func (i *Issuer) buildRoutes() {
	listeners := map[string]*lazyServer{}
	alpn := map[string]*alpnProvider{}
	locks := map[string]*recordLocks{}
	build := func(ch Challenges, isDefault bool) *route {
		rt := &route{ch: ch}
		if h := ch.HTTP01; h != nil {
			var p challenge.Provider
			switch {
			case h.Webroot != "":
				// Built at each use: a route's webroot may be created
				// after New (validate stats only the default's).
				p = &webrootProvider{dir: h.Webroot}
			case h.Addr != "":
				// Each listener serves the tokens of the routes that name
				// its address, and only those: a route whose address the
				// CA does not reach fails, whatever other routes listen.
				// The default's are also HTTP01Handler's.
				srv := listeners[h.Addr]
				if srv == nil {
					store := i.tokens
					if !isDefault {
						store = &tokenStore{}
					}
					srv = &lazyServer{addr: h.Addr, handler: store, errLog: i.serverLog()}
					listeners[h.Addr] = srv
					i.servers = append(i.servers, srv)
				}
				rt.servers = append(rt.servers, srv)
				p = &tokenProvider{store: srv.handler.(*tokenStore), srv: srv}
			default:
				p = &tokenProvider{store: i.tokens}
			}
			rt.solvers = append(rt.solvers, solver{challenge.HTTP01, p})
		}
		if t := ch.TLSALPN01; t != nil {
			ap := alpn[t.Addr]
			if ap == nil {
				ap = &alpnProvider{certs: make(map[string][]alpnCert)}
				ap.srv = &lazyServer{addr: t.Addr, handler: http.NotFoundHandler(), errLog: i.serverLog(), tlsConfig: &tls.Config{
					MinVersion:     tls.VersionTLS12,
					NextProtos:     []string{tlsalpn01.ACMETLS1Protocol},
					GetCertificate: ap.getCertificate,
				}}
				alpn[t.Addr] = ap
				i.servers = append(i.servers, ap.srv)
			}
			rt.servers = append(rt.servers, ap.srv)
			rt.solvers = append(rt.solvers, solver{challenge.TLSALPN01, ap})
		}
		if d := ch.DNS01; d != nil {
			// Another process may hold a record's lock as long as one
			// round of its order can take; twice that means it is
			// stopped or stuck.
			prop := d.PropagationTimeout
			if prop == 0 {
				prop = 2 * time.Minute // lego's usual provider default
			}
			maxWait := 2 * (prop + i.cfg.ValidationTimeout + i.cfg.CleanupTimeout)
			l := locks[d.LockDir]
			if l == nil {
				// One per directory: the in-process serialisation spans
				// every route that shares it.
				l = &recordLocks{dir: d.LockDir}
				locks[d.LockDir] = l
			}
			l.maxWait = max(l.maxWait, maxWait)
			rt.dnsLocks = l
			rt.solvers = append(rt.solvers, solver{challenge.DNS01, d.Provider})
		}
		return rt
	}
	if def := i.cfg.defaultChallenges(); !def.empty() {
		i.def = build(def, true)
	}
	for _, name := range slices.Sorted(maps.Keys(i.cfg.Routes)) {
		if i.routes == nil {
			i.routes = make(map[string]*route, len(i.cfg.Routes))
		}
		i.routes[name] = build(i.cfg.Routes[name], false)
	}
}

// routeFor returns the route of the certificate name: its entry in
// Config.Routes, else the default. The error is permanent: no challenge
// configured for name, or the route's local problem (a *renew.LocalError).
func (i *Issuer) routeFor(name string) (*route, error) {
	rt, ok := i.routes[name]
	if !ok {
		rt = i.def
	}
	if rt == nil {
		return nil, permanent(name, "challenge", fmt.Errorf("%w: no challenge configured for certificate %q: add it to Routes, or set a default (HTTP01, TLSALPN01 or DNS01)", renew.ErrConfig, name))
	}
	if h := rt.ch.HTTP01; h != nil && h.Webroot != "" {
		// Before ordering: an order whose challenge cannot be written
		// would only fail at the CA.
		if err := webrootExists(h.Webroot); err != nil {
			return nil, permanent(name, "challenge", err)
		}
	}
	return rt, nil
}

// serverLog routes the challenge servers' net/http log to the Logger at Debug.
func (i *Issuer) serverLog() *log.Logger {
	return slog.NewLogLogger(i.log.With("component", "challenge-server").Handler(), slog.LevelDebug)
}

// pick chooses the challenge to solve for authz: the first configured type
// the CA offers, DNS-01 only for a wildcard.
func (rt *route) pick(authz acme.Authorization) (acme.Challenge, solver, error) {
	for _, s := range rt.solvers {
		if authz.Wildcard && s.typ != challenge.DNS01 {
			continue
		}
		if ch, err := challenge.FindChallenge(s.typ, authz); err == nil {
			return ch, s, nil
		}
	}
	offered := make([]string, 0, len(authz.Challenges))
	for _, c := range authz.Challenges {
		offered = append(offered, c.Type)
	}
	configured := make([]string, 0, len(rt.solvers))
	for _, s := range rt.solvers {
		configured = append(configured, string(s.typ))
	}
	msg := fmt.Sprintf("no configured challenge fits %s: the CA offers %v, the Issuer has %v", challenge.GetTargetedDomain(authz), offered, configured)
	if authz.Wildcard {
		msg += " (a wildcard name needs DNS-01)"
	}
	return acme.Challenge{}, solver{}, errors.New(msg)
}

// tokenStore maps HTTP-01 tokens to key authorizations and serves them.
// Safe for concurrent use.
type tokenStore struct {
	mu sync.RWMutex
	m  map[string]string
}

func (s *tokenStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, http01.PathPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.RLock()
	keyAuth, ok := s.m[token]
	s.mu.RUnlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(keyAuth))
}

func (s *tokenStore) add(token, keyAuth string) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]string)
	}
	s.m[token] = keyAuth
	s.mu.Unlock()
}

func (s *tokenStore) remove(token string) {
	s.mu.Lock()
	delete(s.m, token)
	s.mu.Unlock()
}

// tokenProvider is the HTTP-01 challenge.Provider for the built-in server
// (srv non-nil: bound on first use, kept until Close) or for
// Issuer.HTTP01Handler (srv nil).
type tokenProvider struct {
	store *tokenStore
	srv   *lazyServer
}

func (p *tokenProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	if p.srv != nil {
		if err := p.srv.ensure(ctx); err != nil {
			return err
		}
	}
	p.store.add(token, keyAuth)
	return nil
}

func (p *tokenProvider) CleanUp(_ context.Context, domain, token, keyAuth string) error {
	p.store.remove(token)
	return nil
}

// alpnCert is a TLS-ALPN-01 certificate for one token.
type alpnCert struct {
	token string
	cert  *tls.Certificate
}

// alpnProvider is the TLS-ALPN-01 challenge.Provider behind one long-lived
// listener: certificates by server name, made with lego's
// tlsalpn01.ChallengeCert. Safe for concurrent use.
type alpnProvider struct {
	srv   *lazyServer
	mu    sync.RWMutex
	certs map[string][]alpnCert // lower-case name → newest last
}

func (p *alpnProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	if err := p.srv.ensure(ctx); err != nil {
		return err
	}
	cert, err := tlsalpn01.ChallengeCert(domain, keyAuth)
	if err != nil {
		return fmt.Errorf("tls-alpn-01 certificate for %s: %w", domain, err)
	}
	name := strings.ToLower(domain)
	p.mu.Lock()
	p.certs[name] = append(p.certs[name], alpnCert{token, cert})
	p.mu.Unlock()
	return nil
}

func (p *alpnProvider) CleanUp(_ context.Context, domain, token, keyAuth string) error {
	name := strings.ToLower(domain)
	p.mu.Lock()
	p.certs[name] = slices.DeleteFunc(p.certs[name], func(c alpnCert) bool { return c.token == token })
	if len(p.certs[name]) == 0 {
		delete(p.certs, name)
	}
	p.mu.Unlock()
	return nil
}

func (p *alpnProvider) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if !slices.Contains(hello.SupportedProtos, tlsalpn01.ACMETLS1Protocol) {
		return nil, errors.New("acmeissuer: only acme-tls/1 handshakes are answered here")
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	p.mu.RLock()
	defer p.mu.RUnlock()
	cs := p.certs[name]
	if len(cs) == 0 {
		return nil, fmt.Errorf("acmeissuer: no tls-alpn-01 challenge for %q", hello.ServerName)
	}
	return cs[len(cs)-1].cert, nil
}

// lazyServer is an HTTP(S) server bound on first use and kept until close.
// Safe for concurrent use.
type lazyServer struct {
	addr      string
	handler   http.Handler
	tlsConfig *tls.Config
	errLog    *log.Logger // net/http's complaints (bad handshakes), at Debug

	mu     sync.Mutex
	srv    *http.Server
	done   chan struct{}
	closed bool
}

// ensure binds the listener if it is not bound yet.
func (s *lazyServer) ensure(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.srv != nil {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("challenge listener on %s: %w", s.addr, err)
	}
	if s.tlsConfig != nil {
		ln = tls.NewListener(ln, s.tlsConfig)
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		ErrorLog:          s.errLog,
	}
	s.done = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		_ = srv.Serve(ln) // returns http.ErrServerClosed on close
	}(s.srv, s.done)
	return nil
}

// close stops the server (if it was bound) and waits for it.
func (s *lazyServer) close() error {
	s.mu.Lock()
	s.closed = true
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-done
	return err
}

// txtRecord is a DNS-01 record to wait for.
type txtRecord struct {
	domain string // targeted name, for messages
	fqdn   string
	value  string
}

// dns01Record returns the record name and value of a DNS-01 challenge
// (RFC 8555 §8.4), without lego's CNAME lookup through its process-wide
// resolver: a recursive resolver queried for the name follows a CNAME itself.
func dns01Record(domain, keyAuth string) (fqdn, value string) {
	sum := sha256.Sum256([]byte(keyAuth))
	return dns.Fqdn("_acme-challenge." + strings.TrimPrefix(domain, "*.")), base64.RawURLEncoding.EncodeToString(sum[:])
}

// propagation is the DNS-01 propagation check.
type propagation struct {
	resolvers []string
	timeout   time.Duration
	interval  time.Duration
	delay     time.Duration
	skip      bool
}

func (rt *route) propagation() (*propagation, error) {
	d := rt.ch.DNS01
	p := d.Provider
	pr := &propagation{timeout: d.PropagationTimeout, interval: d.PropagationInterval, delay: d.PropagationDelay, skip: d.SkipPropagationCheck}
	if pt, ok := p.(challenge.ProviderTimeout); ok {
		t, iv := pt.Timeout()
		if pr.timeout == 0 {
			pr.timeout = t
		}
		if pr.interval == 0 {
			pr.interval = iv
		}
	}
	if pr.timeout <= 0 {
		pr.timeout = 60 * time.Second
	}
	if pr.interval <= 0 {
		pr.interval = 2 * time.Second
	}
	if pr.skip {
		return pr, nil
	}
	for _, r := range d.Resolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			r = net.JoinHostPort(r, "53")
		}
		pr.resolvers = append(pr.resolvers, r)
	}
	if len(pr.resolvers) == 0 {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("DNS-01 propagation check: no Resolvers configured and /etc/resolv.conf unusable: %w", err)
		}
		for _, s := range cc.Servers {
			pr.resolvers = append(pr.resolvers, net.JoinHostPort(s, cc.Port))
		}
		if len(pr.resolvers) == 0 {
			return nil, errors.New("DNS-01 propagation check: no Resolvers configured and none in /etc/resolv.conf")
		}
	}
	return pr, nil
}

// errNotPropagated is returned by wait when the timeout passed.
var errNotPropagated = errors.New("TXT record not visible")

// wait returns once every resolver answers every record, ctx ends or the
// timeout passes. The first check is immediate (after delay). On timeout the
// error says what the resolvers answered instead: nothing, or other values
// (naming those this Issuer presented, through ours).
func (p *propagation) wait(ctx context.Context, recs []txtRecord, ours func(string) string) error {
	if p.delay > 0 {
		if err := sleep(ctx, p.delay); err != nil {
			return err
		}
	}
	if p.skip || len(recs) == 0 {
		return nil
	}
	deadline := time.Now().Add(p.timeout)
	pending := slices.Clone(recs)
	var lastErr error
	others := map[string][]string{} // fqdn → other values seen in the last check
	for {
		pending = slices.DeleteFunc(pending, func(r txtRecord) bool {
			ok, vals, err := p.visible(ctx, r)
			if err != nil {
				lastErr = err
			}
			others[r.fqdn] = vals
			return ok
		})
		if len(pending) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().Add(p.interval).After(deadline) {
			r := pending[0]
			err := fmt.Errorf("%w for %s (%s) at %v after %v", errNotPropagated, r.domain, r.fqdn, p.resolvers, p.timeout)
			if vals := others[r.fqdn]; len(vals) > 0 {
				err = fmt.Errorf("%w: the record is there with other values instead of ours (%q): %s", err, r.value, describeOthers(vals, ours))
			}
			if lastErr != nil {
				err = fmt.Errorf("%w; last DNS error: %w", err, lastErr)
			}
			return err
		}
		if err := sleep(ctx, p.interval); err != nil {
			return err
		}
	}
}

// visible reports whether every resolver answers r's value; when one does
// not, others are the values it answered instead.
func (p *propagation) visible(ctx context.Context, r txtRecord) (ok bool, others []string, err error) {
	for _, server := range p.resolvers {
		m := new(dns.Msg)
		m.SetQuestion(r.fqdn, dns.TypeTXT)
		m.RecursionDesired = true
		c := &dns.Client{Timeout: 2 * time.Second}
		in, _, err := c.ExchangeContext(ctx, m, server)
		if err == nil && in.Truncated {
			c.Net = "tcp"
			in, _, err = c.ExchangeContext(ctx, m, server)
		}
		if err != nil {
			return false, nil, fmt.Errorf("query %s at %s: %w", r.fqdn, server, err)
		}
		found := false
		var vals []string
		for _, rr := range in.Answer {
			if txt, ok := rr.(*dns.TXT); ok {
				v := strings.Join(txt.Txt, "")
				if v == r.value {
					found = true
					break
				}
				vals = append(vals, v)
			}
		}
		if !found {
			return false, vals, nil
		}
	}
	return true, nil, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
