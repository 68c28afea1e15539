package testacme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"

	"github.com/renewkit/renewkit/internal/loopport"
)

// Built-in profile lifetimes.
const (
	// DefaultLifetime is the lifetime of the built-in "default" profile.
	DefaultLifetime = 90 * 24 * time.Hour
	// ShortLivedLifetime is the lifetime of the built-in "shortlived" profile
	// (Let's Encrypt's is 160 hours; 6 days is close enough for tests).
	ShortLivedLifetime = 6 * 24 * time.Hour
)

// Options configures a [Server]. The zero value is a server that validates
// challenges for real, rejects no nonce, never reuses authorizations, offers
// the "default" and "shortlived" profiles, requires no EAB and logs nothing.
type Options struct {
	// AlwaysValid makes every challenge valid without any validation request
	// (Pebble's PEBBLE_VA_ALWAYS_VALID). No solver is needed then and names
	// need not resolve. Zero: validate HTTP-01, DNS-01 and TLS-ALPN-01 for real
	// over loopback.
	AlwaysValid bool

	// Profiles adds ACME profiles, name → certificate lifetime, to the built-in
	// "default" (DefaultLifetime) and "shortlived" (ShortLivedLifetime). A
	// lifetime is whole seconds, at least one; an entry named like a built-in
	// overrides it, and an entry with lifetime 0 removes that profile.
	// Pebble gives an order that names no profile a random one of those
	// offered: name the profile in every order, or leave exactly one.
	// Start fails when no profile is left.
	Profiles map[string]time.Duration

	// RequireEAB makes newAccount require external account binding. The keys
	// are EABKeys; if that is empty one random key is generated (see
	// [Server.EABKey]).
	RequireEAB bool
	// EABKeys are the external account keys the server knows, key ID →
	// base64url (unpadded) HMAC key. Accepted with or without RequireEAB.
	EABKeys map[string]string

	// NonceRejectPercent is the share (0–99) of good nonces Pebble rejects as
	// badNonce (PEBBLE_WFE_NONCEREJECT). Zero: none, unlike Pebble's 5 %.
	NonceRejectPercent int

	// HTTP01Port is the port Pebble's VA connects to for HTTP-01 (on
	// 127.0.0.1, where every name resolves). Zero: a free port is reserved at
	// Start. See [Server.HTTP01Addr].
	HTTP01Port int
	// ServeHTTP01 makes the server answer HTTP-01 itself on HTTP01Addr, from
	// the tokens presented through [Server.HTTP01Provider]. A client's own
	// HTTP-01 server cannot bind HTTP01Addr then: the two are alternatives.
	ServeHTTP01 bool
	// TLSALPN01Port is the port the VA connects to for TLS-ALPN-01. Zero: a
	// free port is reserved at Start. See [Server.TLSALPN01Addr].
	TLSALPN01Port int

	// DNS is a responder shared with other servers or with a DNS-01 client.
	// Nil: the server starts its own and closes it in Close; a shared one is
	// left running.
	DNS *DNSResponder

	// VAResolver is the DNS server ("host:port", queried over TCP) Pebble's
	// VA resolves every name through, for DNS-01 TXT lookups as for the A
	// records of HTTP-01 and TLS-ALPN-01: point it at a real nameserver (a
	// test's BIND on loopback) to validate against that server's zone.
	// Empty: the server's DNS responder (DNSAddr).
	VAResolver string

	// Strict turns on Pebble's strict mode (RFC 8555 details enforced).
	Strict bool

	// FaultSeed seeds the random source that decides probabilistic faults
	// (Fault.Probability). Zero is a valid seed; equal seeds give equal
	// decision sequences.
	FaultSeed uint64

	// Logger receives Pebble's log lines (component=pebble) and the server's
	// own (component=testacme). Nil: nothing is logged.
	Logger *slog.Logger

	// TempDir is where the CAFile directory is created. Empty: os.TempDir().
	TempDir string
}

// envMu serializes the construction of Pebble's VA and WFE, which read their
// settings from process environment variables (PEBBLE_VA_NOSLEEP,
// PEBBLE_VA_ALWAYS_VALID, PEBBLE_WFE_NONCEREJECT, PEBBLE_AUTHZREUSE,
// PEBBLE_WFE_ORDERS_PER_PAGE) once, inside va.New and wfe.New. Start sets
// them, constructs, and restores the previous values under this lock, so that
// servers with different settings can start from parallel tests and nothing
// leaks into the rest of the process. It is the package's only global, and
// it must be one: the environment it guards is process-wide.
var envMu sync.Mutex

// Server is a running in-process ACME CA (Pebble) with its loopback DNS
// responder, fault injection and accounting. All methods are safe for
// concurrent use; most are cheap accessors valid even after Close.
type Server struct {
	opts Options
	log  *slog.Logger

	store   *db.MemoryStore
	ca      *ca.CAImpl
	handler http.Handler // Pebble's ACME handler

	acmeLn   net.Listener
	acmeSrv  *http.Server
	dirURL   string
	tlsCert  *x509.Certificate
	certPool *x509.CertPool
	tempDir  string
	caFile   string

	dns    *DNSResponder
	ownDNS bool

	http01Port, tlsalpnPort int
	releases                []func() error
	tokens                  *tokenServer // nil unless ServeHTTP01

	eabKID, eabKey string

	faults    *faultSet
	forgotten forgotten // see ForgetAccount
	acct      *accounting
	replMu    sync.RWMutex // see handler.go: newOrder with `replaces` vs finalizations
	ariMu     sync.RWMutex // renewalInfo reads vs SetRenewalInfo writes
	// authzMu breaks a lock-order cycle in Pebble that deadlocks the whole
	// server under concurrent orders: its Authz handler holds an
	// authorization's lock while it takes the store's read lock, while
	// FindValidAuthorization (newOrder) and GetOrderByID (order, finalize,
	// list-orders, and this package) hold the store's read lock and take
	// authorization locks; a store writer waiting in between (a new order, a
	// new account, an issued certificate) closes the cycle. Authz requests
	// take authzMu exclusively, the others shared, so the two never overlap.
	authzMu sync.RWMutex
	reqs    requests     // the requests in the middleware, for Close
	logMu   sync.RWMutex // guards logOff: slogWriter.Write shared, Close exclusively
	logOff  bool

	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Start starts a server. Close it when done: its listeners, DNS responder
// and temporary files are released by Close (Pebble's VA goroutine is not:
// see the package documentation).
func Start(opts Options) (s *Server, err error) {
	if opts.NonceRejectPercent < 0 || opts.NonceRejectPercent > 99 {
		return nil, fmt.Errorf("testacme: NonceRejectPercent %d outside 0..99", opts.NonceRejectPercent)
	}
	profiles, err := pebbleProfiles(opts.Profiles)
	if err != nil {
		return nil, err
	}
	s = &Server{
		opts:    opts,
		log:     opts.Logger,
		closing: make(chan struct{}),
		acct:    newAccounting(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "testacme")
	s.faults = newFaultSet(opts.FaultSeed)
	defer func() {
		if err != nil {
			_ = s.Close()
			s = nil
		}
	}()

	// Loopback DNS first: the VA needs its address.
	s.dns = opts.DNS
	if s.dns == nil {
		if s.dns, err = StartDNS(); err != nil {
			return s, err
		}
		s.ownDNS = true
	}
	if s.http01Port, err = s.port(opts.HTTP01Port); err != nil {
		return s, fmt.Errorf("testacme: HTTP-01 port: %w", err)
	}
	if s.tlsalpnPort, err = s.port(opts.TLSALPN01Port); err != nil {
		return s, fmt.Errorf("testacme: TLS-ALPN-01 port: %w", err)
	}
	if opts.ServeHTTP01 {
		if s.tokens, err = startTokenServer(s.HTTP01Addr(), s.errorLog()); err != nil {
			return s, err
		}
	}

	var plog *log.Logger
	if opts.Logger == nil {
		plog = log.New(io.Discard, "", 0) // io.Discard: log skips formatting entirely
	} else {
		plog = log.New(&slogWriter{s: s, l: opts.Logger.With("component", "pebble")}, "", 0)
	}

	s.store = db.NewMemoryStore()
	if err := s.setupEAB(); err != nil {
		return s, err
	}
	s.ca = ca.New(plog, s.store, "", "ecdsa", 0, 1, profiles)
	w, err := s.newPebble(plog)
	if err != nil {
		return s, err
	}
	s.handler = w.Handler()

	if err := s.serveACME(); err != nil {
		return s, err
	}
	return s, nil
}

// newPebble builds the VA and the WFE with the environment they read set for
// this server, under envMu.
func (s *Server) newPebble(plog *log.Logger) (w wfe.WebFrontEndImpl, err error) {
	env := map[string]string{
		"PEBBLE_VA_NOSLEEP":          "1",
		"PEBBLE_VA_ALWAYS_VALID":     "0",
		"PEBBLE_WFE_NONCEREJECT":     strconv.Itoa(s.opts.NonceRejectPercent),
		"PEBBLE_AUTHZREUSE":          "0",
		"PEBBLE_WFE_ORDERS_PER_PAGE": "3",
	}
	if s.opts.AlwaysValid {
		env["PEBBLE_VA_ALWAYS_VALID"] = "1"
	}
	envMu.Lock()
	defer envMu.Unlock()
	restore, err := setenv(env)
	if err != nil {
		return w, err
	}
	defer func() {
		if rerr := restore(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	resolver := s.dns.Addr()
	if s.opts.VAResolver != "" {
		resolver = s.opts.VAResolver
	}
	v := va.New(plog, s.http01Port, s.tlsalpnPort, s.opts.Strict, resolver, s.store)
	w = wfe.New(plog, s.store, v, s.ca, nil, s.opts.Strict, s.opts.RequireEAB, 0, 0)
	return w, nil
}

// setenv sets vars and returns a func restoring the previous state (unset
// when a variable was unset before). Callers hold envMu.
func setenv(vars map[string]string) (restore func() error, err error) {
	type prev struct {
		val string
		set bool
	}
	old := make(map[string]prev, len(vars))
	restore = func() error {
		var errs []error
		for k, p := range old {
			if p.set {
				errs = append(errs, os.Setenv(k, p.val))
			} else {
				errs = append(errs, os.Unsetenv(k))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("testacme: restore environment: %w", err)
		}
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		v, ok := os.LookupEnv(k)
		old[k] = prev{v, ok}
		if err := os.Setenv(k, vars[k]); err != nil {
			return nil, errors.Join(fmt.Errorf("testacme: set %s: %w", k, err), restore())
		}
	}
	return restore, nil
}

func pebbleProfiles(extra map[string]time.Duration) (map[string]ca.Profile, error) {
	lifetimes := map[string]time.Duration{"default": DefaultLifetime, "shortlived": ShortLivedLifetime}
	for name, d := range extra {
		switch {
		case d == 0:
			delete(lifetimes, name)
		case d < time.Second || d%time.Second != 0:
			return nil, fmt.Errorf("testacme: profile %q: lifetime %v is not a positive whole number of seconds", name, d)
		case name == "":
			return nil, errors.New("testacme: profile with an empty name")
		default:
			lifetimes[name] = d
		}
	}
	if len(lifetimes) == 0 {
		// Pebble panics (rand.Intn(0)) on an order without a profile then.
		return nil, errors.New("testacme: no profile left: Options.Profiles removed them all")
	}
	out := make(map[string]ca.Profile, len(lifetimes))
	for name, d := range lifetimes {
		out[name] = ca.Profile{
			Description:    fmt.Sprintf("certificates valid for %v", d),
			ValidityPeriod: uint64(d / time.Second),
		}
	}
	return out, nil
}

// port returns fixed, or reserves a free one until Close.
func (s *Server) port(fixed int) (int, error) {
	if fixed != 0 {
		if fixed < 0 || fixed > 65535 {
			return 0, fmt.Errorf("port %d out of range", fixed)
		}
		return fixed, nil
	}
	p, release, err := loopport.Reserve()
	if err != nil {
		return 0, err
	}
	s.releases = append(s.releases, release)
	return p, nil
}

func (s *Server) setupEAB() error {
	keys := s.opts.EABKeys
	if len(keys) == 0 && s.opts.RequireEAB {
		b := make([]byte, 32)
		_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
		keys = map[string]string{"testacme-kid-1": base64.RawURLEncoding.EncodeToString(b)}
	}
	for _, kid := range slices.Sorted(maps.Keys(keys)) {
		if err := s.store.AddExternalAccountKeyByID(kid, keys[kid]); err != nil {
			return fmt.Errorf("testacme: EAB key %q: %w", kid, err)
		}
		if s.eabKID == "" {
			s.eabKID, s.eabKey = kid, keys[kid]
		}
	}
	return nil
}

// serveACME starts the TLS listener for Pebble's handler behind the
// middleware, with a fresh self-signed ECDSA certificate for 127.0.0.1.
func (s *Server) serveACME() error {
	certDER, key, err := selfSigned()
	if err != nil {
		return err
	}
	if s.tlsCert, err = x509.ParseCertificate(certDER); err != nil {
		return fmt.Errorf("testacme: parse endpoint certificate: %w", err)
	}
	s.certPool = x509.NewCertPool()
	s.certPool.AddCert(s.tlsCert)

	dir := s.opts.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	if s.tempDir, err = os.MkdirTemp(dir, "testacme-*"); err != nil {
		return fmt.Errorf("testacme: CA file directory: %w", err)
	}
	s.caFile = filepath.Join(s.tempDir, "acme-endpoint-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	if err := os.WriteFile(s.caFile, pemBytes, 0o644); err != nil {
		return fmt.Errorf("testacme: write %s: %w", s.caFile, err)
	}

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("testacme: ACME listener: %w", err)
	}
	s.acmeLn = tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{certDER}, PrivateKey: key}},
		// HTTP/1.1 only: the "reset" fault needs http.Hijacker.
		NextProtos: []string{"http/1.1"},
		MinVersion: tls.VersionTLS12,
	})
	s.dirURL = "https://" + ln.Addr().String() + wfe.DirectoryPath
	s.acmeSrv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ErrorLog:          s.errorLog(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = s.acmeSrv.Serve(s.acmeLn) }() // returns ErrServerClosed on Close
	return nil
}

func selfSigned() (der []byte, key *ecdsa.PrivateKey, err error) {
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("testacme: endpoint key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("testacme: endpoint serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "testacme ACME endpoint"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed trust anchor; some verifiers insist
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("testacme: endpoint certificate: %w", err)
	}
	return der, key, nil
}

// closeWait bounds how long Close waits for requests in progress.
const closeWait = 10 * time.Second

// requests counts the requests in the middleware so that Close can wait for
// them (a sync.WaitGroup may not be Added to while Waited on).
type requests struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{}
}

// enter registers a request; false once Close has begun.
func (r *requests) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.n++
	return true
}

func (r *requests) leave() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n--
	if r.n == 0 && r.idle != nil {
		close(r.idle)
		r.idle = nil
	}
}

// idleCh returns a channel closed when no request is in progress (at once
// if none is now).
func (r *requests) idleCh() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if r.idle == nil {
		r.idle = make(chan struct{})
	}
	return r.idle
}

// drain refuses new requests and returns a channel closed when none is left.
func (r *requests) drain() <-chan struct{} {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return r.idleCh()
}

func (r *requests) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Close stops the ACME listener (open connections are closed and stalled or
// held requests released), the HTTP-01 token server, the DNS responder it
// started, releases reserved ports and removes the CA file. It waits for the
// requests in progress to return (at most 10 s). Idempotent; later calls
// return the first result.
//
// Pebble's VA keeps one goroutine per server forever (it has no shutdown);
// Close cannot stop it. A validation still running when Close is called ends
// on its own within Pebble's 15 s validation timeout.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		// From here on Pebble's log lines are dropped; taking logMu waits for
		// one being written (the Logger may be a test's, unusable after it).
		s.logMu.Lock()
		s.logOff = true
		s.logMu.Unlock()
		var errs []error
		if s.acmeSrv != nil {
			errs = append(errs, s.acmeSrv.Close())
		} else if s.acmeLn != nil {
			errs = append(errs, s.acmeLn.Close())
		}
		// Wait for the requests in progress: stalls and holds end on
		// s.closing, the rest is Pebble's work. Bounded, in case Pebble
		// itself is stuck.
		select {
		case <-s.reqs.drain():
		case <-time.After(closeWait):
			errs = append(errs, fmt.Errorf("%d requests still running in Pebble after %v", s.reqs.count(), closeWait))
		}
		if s.tokens != nil {
			errs = append(errs, s.tokens.close())
		}
		if s.ownDNS && s.dns != nil {
			errs = append(errs, s.dns.Close())
		}
		for _, release := range s.releases {
			errs = append(errs, release())
		}
		if s.tempDir != "" {
			errs = append(errs, os.RemoveAll(s.tempDir))
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("testacme: close: %w", err)
		}
	})
	return s.closeErr
}

// DirectoryURL returns the ACME directory URL, https://127.0.0.1:PORT/dir.
func (s *Server) DirectoryURL() string { return s.dirURL }

// CertPool returns a new pool holding the ACME endpoint's TLS certificate.
func (s *Server) CertPool() *x509.CertPool { return s.certPool.Clone() }

// CAFile returns the path of a PEM file with the ACME endpoint's TLS
// certificate, for subprocesses (e.g. LEGO_CA_CERTIFICATES). Removed by Close.
func (s *Server) CAFile() string { return s.caFile }

// CAPEM returns the contents of [Server.CAFile]: the ACME endpoint's TLS
// certificate, PEM-encoded. Valid after Close too.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.tlsCert.Raw})
}

// HTTPClient returns a new client that trusts the ACME endpoint. It is a
// new one on every call because lego wraps the transport of the client it is
// given: give each lego client its own. Requests time out after 30 s.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only, whatever HTTPS_PROXY says
			TLSClientConfig:     &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// Roots returns the CA's issuing root certificates (trust anchors for the
// chains it issues; one unless Pebble is built with alternate roots).
func (s *Server) Roots() []*x509.Certificate {
	n := s.ca.GetNumberOfRootCerts()
	out := make([]*x509.Certificate, 0, n)
	for i := range n {
		if c := s.ca.GetRootCert(i); c != nil {
			out = append(out, c.Cert)
		}
	}
	return out
}

// RootPool returns a new pool of [Server.Roots], for x509.VerifyOptions.Roots.
func (s *Server) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range s.Roots() {
		p.AddCert(c)
	}
	return p
}

// HTTP01Addr returns "127.0.0.1:PORT", where the VA fetches HTTP-01 tokens.
// A client's HTTP-01 solver listens here, unless Options.ServeHTTP01 made the
// server serve tokens itself. Every name resolves to 127.0.0.1, so the
// solver must listen on 127.0.0.1 (or all interfaces).
//
// On Linux the port is held reserved until Close (bound, not listening; a
// Go listener can still bind it); elsewhere it was free at Start.
func (s *Server) HTTP01Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.http01Port))
}

// TLSALPN01Addr returns "127.0.0.1:PORT", where the VA connects for
// TLS-ALPN-01 (e.g. lego's tlsalpn01.NewProviderServer("127.0.0.1", port)).
func (s *Server) TLSALPN01Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsalpnPort))
}

// DNSAddr returns the loopback DNS responder's "127.0.0.1:PORT" (UDP and
// TCP), the VA's resolver unless Options.VAResolver names another. Point
// DNS-01 clients' resolvers here.
func (s *Server) DNSAddr() string { return s.dns.Addr() }

// DNS returns the server's DNS responder (shared or its own).
func (s *Server) DNS() *DNSResponder { return s.dns }

// SetTXT replaces the TXT values of name on the DNS responder (see
// [DNSResponder.SetTXT]).
func (s *Server) SetTXT(name string, values ...string) { s.dns.SetTXT(name, values...) }

// EABKey returns the external account key (key ID, base64url HMAC key) to
// register with: the generated one when RequireEAB was set without EABKeys,
// else the EABKeys entry with the smallest key ID; empty strings when none.
func (s *Server) EABKey() (kid, hmacB64 string) { return s.eabKID, s.eabKey }

// errorLog adapts net/http's error log to the server's logger (quiet when
// no Logger was given).
func (s *Server) errorLog() *log.Logger {
	if s.opts.Logger == nil {
		return log.New(io.Discard, "", 0)
	}
	return log.New(&slogWriter{s: s, l: s.log, level: slog.LevelDebug}, "", 0)
}

// slogWriter turns *log.Logger output (one Write per line) into slog
// records, and drops them once the server is closed (a testing.TB logger
// panics when used after its test).
type slogWriter struct {
	s     *Server
	l     *slog.Logger
	level slog.Level
}

func (w *slogWriter) Write(p []byte) (int, error) {
	w.s.logMu.RLock()
	defer w.s.logMu.RUnlock()
	if w.s.logOff {
		return len(p), nil
	}
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.l.Log(context.Background(), w.level, msg)
	return len(p), nil
}

// newRand returns a seeded source for fault decisions (guarded by the
// fault set's mutex).
func newRand(seed uint64) *mrand.Rand {
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
