package acmeissuer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/pubkey"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

func TestMain(m *testing.M) {
	// lego writes to stdout through a process-wide logger; silence it in
	// this test binary, which is what SetLegoLogger is for.
	SetLegoLogger(nil)
	os.Exit(m.Run())
}

// startCA starts a test CA closed at the end of the test.
func startCA(t testing.TB, opts testacme.Options) *testacme.Server {
	t.Helper()
	ca, err := testacme.Start(opts)
	if err != nil {
		t.Fatalf("testacme.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := ca.Close(); err != nil {
			t.Errorf("testacme Close: %v", err)
		}
	})
	return ca
}

// testConfig is a Config for ca with the built-in HTTP-01 listener.
func testConfig(t testing.TB, ca *testacme.Server) Config {
	return Config{
		DirectoryURL: ca.DirectoryURL(),
		AgreeTOS:     true,
		Email:        "admin@example.org",
		AccountDir:   t.TempDir(),
		HTTPClient:   ca.HTTPClient,
		HTTP01:       &HTTP01{Addr: ca.HTTP01Addr()},
		Logger:       testLogger(t),
	}
}

// fastConfig is testConfig for a CA started with AlwaysValid: nothing needs
// to listen, so several Issuers can coexist (each built-in listener holds
// HTTP01Addr until its Issuer is closed).
func fastConfig(t testing.TB, ca *testacme.Server) Config {
	cfg := testConfig(t, ca)
	cfg.HTTP01 = &HTTP01{}
	return cfg
}

// newTestIssuer creates an Issuer closed at the end of the test.
func newTestIssuer(t testing.TB, cfg Config) *Issuer {
	t.Helper()
	iss, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := iss.Close(); err != nil {
			t.Errorf("Issuer.Close: %v", err)
		}
	})
	return iss
}

// testLogger logs through t at Debug when -v is given, else discards.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var domainSeq atomic.Int64

// domain returns a fresh name per call, so no two tests share an
// identifier set in the CA's counters.
func domain(prefix string) string {
	return fmt.Sprintf("%s-%d.example.org", prefix, domainSeq.Add(1))
}

func mustKey(t testing.TB, kt renew.KeyType) crypto.Signer {
	t.Helper()
	k, err := kt.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// memJournal is an order journal (the journal of renew.Issuer.Issue) keeping its records in memory.
type memJournal struct {
	mu   sync.Mutex
	recs []renew.InFlight
	err  error  // returned by every call when set
	hook func() // called before returning, if set
}

func (j *memJournal) journal(ctx context.Context, rec renew.InFlight) error {
	j.mu.Lock()
	j.recs = append(j.recs, rec)
	err, hook := j.err, j.hook
	j.mu.Unlock()
	if hook != nil {
		hook()
	}
	return err
}

func (j *memJournal) records() []renew.InFlight {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]renew.InFlight(nil), j.recs...)
}

// issue runs Issue for names with a fresh EC256 key and checks the result.
func issue(t testing.TB, iss *Issuer, req renew.IssueRequest) (*renew.Issued, *memJournal) {
	t.Helper()
	if req.Key == nil {
		req.Key = mustKey(t, renew.EC256)
	}
	if req.Name == "" {
		req.Name = "test"
	}
	j := &memJournal{}
	got, err := iss.Issue(context.Background(), req, j.journal)
	if err != nil {
		t.Fatalf("Issue(%v): %v", req.Domains, err)
	}
	checkIssued(t, got, req)
	if recs := j.records(); len(recs) != 1 || recs[0].OrderURL != got.OrderURL {
		t.Errorf("journal records %+v, want one for %s", recs, got.OrderURL)
	}
	return got, j
}

// checkIssued verifies the leaf against the request.
func checkIssued(t testing.TB, got *renew.Issued, req renew.IssueRequest) {
	t.Helper()
	if got == nil || got.Leaf == nil {
		t.Fatalf("Issued %+v has no leaf", got)
	}
	if len(got.Cert) == 0 || len(got.Chain) == 0 || got.OrderURL == "" {
		t.Errorf("Issued is incomplete: cert %d bytes, chain %d bytes, order %q", len(got.Cert), len(got.Chain), got.OrderURL)
	}
	for _, d := range req.Domains {
		if err := got.Leaf.VerifyHostname(d); err != nil {
			t.Errorf("leaf does not cover %s: %v", d, err)
		}
	}
	if req.Key != nil && !pubkey.Equal(req.Key.Public(), got.Leaf.PublicKey) {
		t.Errorf("leaf is not for the request's key")
	}
	if strings.Count(string(got.Cert), "BEGIN CERTIFICATE") != 1 {
		t.Errorf("Cert holds %d certificates, want the leaf only", strings.Count(string(got.Cert), "BEGIN CERTIFICATE"))
	}
}

// verifyChain checks that the issued chain builds to the CA's roots.
func verifyChain(t testing.TB, ca *testacme.Server, got *renew.Issued) {
	t.Helper()
	inter := x509.NewCertPool()
	if !inter.AppendCertsFromPEM(got.Chain) {
		t.Fatalf("chain has no certificate")
	}
	if _, err := got.Leaf.Verify(x509.VerifyOptions{Roots: ca.RootPool(), Intermediates: inter, CurrentTime: time.Now()}); err != nil {
		t.Errorf("chain does not verify: %v", err)
	}
}

// watchTransport signals when a request whose path has a given prefix is sent.
type watchTransport struct {
	base   http.RoundTripper
	mu     sync.Mutex
	paths  []string
	prefix string
	once   sync.Once
	seen   chan struct{}
}

func newWatch(prefix string) *watchTransport {
	return &watchTransport{prefix: prefix, seen: make(chan struct{})}
}

func (w *watchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	w.mu.Lock()
	w.paths = append(w.paths, req.Method+" "+req.URL.Path)
	w.mu.Unlock()
	if w.prefix != "" && strings.HasPrefix(req.URL.Path, w.prefix) {
		w.once.Do(func() { close(w.seen) })
	}
	return w.base.RoundTrip(req)
}

func (w *watchTransport) requests() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.paths...)
}

// watchedClient returns an HTTPClient factory for ca whose requests go
// through w.
func watchedClient(ca *testacme.Server, w *watchTransport) func() *http.Client {
	return func() *http.Client {
		c := ca.HTTPClient()
		w.mu.Lock()
		if w.base == nil {
			w.base = c.Transport
		}
		w.mu.Unlock()
		c.Transport = w
		return c
	}
}

// stripARI removes renewalInfo from the directory, as served by a CA
// without ARI.
type stripARI struct{ base http.RoundTripper }

func (s stripARI) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/dir") {
		return resp, err
	}
	defer resp.Body.Close()
	var dir map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil {
		return nil, err
	}
	delete(dir, "renewalInfo")
	b, err := json.Marshal(dir)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}
