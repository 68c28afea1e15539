package acmeissuer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/pubkey"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

func TestIssueHTTP01Listener(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	iss := newTestIssuer(t, testConfig(t, ca))
	names := []string{domain("www"), domain("api")}
	got, _ := issue(t, iss, renew.IssueRequest{Domains: names, Profile: "default"})
	verifyChain(t, ca, got)
	if st := ca.Stats(names...); st.Orders != 1 || st.Issued != 1 {
		t.Errorf("CA stats %+v, want one order and one issuance", st)
	}
	// The listener stays bound between orders: a second order reuses it.
	issue(t, iss, renew.IssueRequest{Domains: []string{domain("again")}, Profile: "default"})
}

func TestIssueConcurrentShareListener(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	iss := newTestIssuer(t, testConfig(t, ca))
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			names := []string{domain("conc")}
			_, err := iss.Issue(context.Background(), renew.IssueRequest{Name: names[0], Domains: names, Key: mustKey(t, renew.EC256), Profile: "default"},
				func(context.Context, renew.InFlight) error { return nil })
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Issue: %v", err)
		}
	}
}

func TestIssueHTTP01Webroot(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	webroot := t.TempDir()
	// A tiny file server for the webroot, where the CA fetches tokens.
	ln, err := net.Listen("tcp", ca.HTTP01Addr())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(webroot)), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cfg := testConfig(t, ca)
	cfg.HTTP01 = &HTTP01{Webroot: webroot}
	iss := newTestIssuer(t, cfg)
	issue(t, iss, renew.IssueRequest{Domains: []string{domain("webroot")}, Profile: "default"})

	// The token files are removed after validation.
	left, err := filepath.Glob(filepath.Join(webroot, ".well-known", "acme-challenge", "*"))
	if err != nil || len(left) != 0 {
		t.Errorf("webroot still holds %v (%v)", left, err)
	}
}

func TestIssueHTTP01Handler(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	cfg := testConfig(t, ca)
	cfg.HTTP01 = &HTTP01{} // the caller serves Issuer.HTTP01Handler
	iss := newTestIssuer(t, cfg)
	ln, err := net.Listen("tcp", ca.HTTP01Addr())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/.well-known/acme-challenge/", iss.HTTP01Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	issue(t, iss, renew.IssueRequest{Domains: []string{domain("handler")}, Profile: "default"})
}

func TestIssueDNS01(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	cfg := testConfig(t, ca)
	cfg.HTTP01 = nil
	cfg.DNS01 = &DNS01{Provider: ca.DNS01Provider(), Resolvers: []string{ca.DNSAddr()}}
	iss := newTestIssuer(t, cfg)
	base := domain("dns")
	// A wildcard and its base name share one TXT name with two values.
	issue(t, iss, renew.IssueRequest{Domains: []string{base, "*." + base}, Profile: "default"})
}

func TestIssueWildcardNeedsDNS01(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	iss := newTestIssuer(t, testConfig(t, ca))
	base := domain("wild")
	_, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "wild", Domains: []string{"*." + base}, Key: mustKey(t, renew.EC256), Profile: "default"},
		func(context.Context, renew.InFlight) error { t.Error("journal called"); return nil })
	if !errors.Is(err, backoff.ErrPermanent) || !strings.Contains(err.Error(), "needs DNS-01") {
		t.Fatalf("err = %v, want a permanent error saying a wildcard needs DNS-01", err)
	}
}

func TestIssueTLSALPN01(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	cfg := testConfig(t, ca)
	cfg.HTTP01 = nil
	cfg.TLSALPN01 = &TLSALPN01{Addr: ca.TLSALPN01Addr()}
	iss := newTestIssuer(t, cfg)
	issue(t, iss, renew.IssueRequest{Domains: []string{domain("alpn")}, Profile: "default"})
}

func TestIssueKeyTypes(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	iss := newTestIssuer(t, fastConfig(t, ca))
	for _, kt := range []renew.KeyType{renew.EC256, renew.EC384, renew.RSA2048, renew.RSA3072, renew.RSA4096} {
		t.Run(string(kt), func(t *testing.T) {
			if kt == renew.RSA4096 && testing.Short() {
				t.Skip("RSA 4096 key generation is slow")
			}
			key := mustKey(t, kt)
			got, _ := issue(t, iss, renew.IssueRequest{Domains: []string{domain(string(kt))}, Key: key, Profile: "default"})
			if !pubkey.Equal(key.Public(), got.Leaf.PublicKey) {
				t.Errorf("leaf key type mismatch")
			}
		})
	}
}

func TestIssueProfile(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true, Profiles: map[string]time.Duration{"tiny": 10 * time.Minute}})
	iss := newTestIssuer(t, fastConfig(t, ca))
	for _, tt := range []struct {
		profile string
		life    time.Duration
	}{
		{"shortlived", testacme.ShortLivedLifetime},
		{"tiny", 10 * time.Minute},
		{"default", testacme.DefaultLifetime},
	} {
		t.Run(tt.profile, func(t *testing.T) {
			got, _ := issue(t, iss, renew.IssueRequest{Domains: []string{domain(tt.profile)}, Profile: tt.profile})
			life := got.Leaf.NotAfter.Sub(got.Leaf.NotBefore)
			if d := life - tt.life; d < -time.Minute || d > time.Minute {
				t.Errorf("lifetime %v, want about %v", life, tt.life)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "p", Domains: []string{domain("p")}, Key: mustKey(t, renew.EC256), Profile: "nope"},
			func(context.Context, renew.InFlight) error { return nil })
		if !errors.Is(err, backoff.ErrPermanent) || !strings.Contains(err.Error(), `profile "nope"`) {
			t.Fatalf("err = %v, want a permanent error naming the profile", err)
		}
	})
}

func TestIssueJournalBeforeFinalize(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	w := newWatch("")
	cfg := fastConfig(t, ca)
	cfg.HTTPClient = watchedClient(ca, w)
	iss := newTestIssuer(t, cfg)

	t.Run("journal then finalize", func(t *testing.T) {
		var atJournal []string
		j := &memJournal{hook: func() { atJournal = w.requests() }}
		names := []string{domain("journal")}
		got, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "j", Domains: names, Key: mustKey(t, renew.EC256), Profile: "default"}, j.journal)
		if err != nil {
			t.Fatal(err)
		}
		recs := j.records()
		if len(recs) != 1 || recs[0].OrderURL != got.OrderURL || !slices.Equal(recs[0].Domains, names) || recs[0].Created.IsZero() {
			t.Fatalf("journal records %+v, want one for order %s", recs, got.OrderURL)
		}
		if slices.ContainsFunc(atJournal, isFinalize) {
			t.Errorf("finalize was sent before the journal was called: %v", atJournal)
		}
		if !slices.ContainsFunc(w.requests(), isFinalize) {
			t.Errorf("no finalize request seen")
		}
	})

	t.Run("journal error prevents finalize", func(t *testing.T) {
		before := len(w.requests())
		jerr := errors.New("disk full")
		j := &memJournal{err: jerr}
		names := []string{domain("nojournal")}
		key := mustKey(t, renew.EC256)
		_, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "j", Domains: names, Key: key, Profile: "default"}, j.journal)
		if !errors.Is(err, jerr) || !errors.Is(err, backoff.ErrPermanent) {
			t.Fatalf("err = %v, want the journal's error, permanent", err)
		}
		if slices.ContainsFunc(w.requests()[before:], isFinalize) {
			t.Errorf("finalize was sent although the journal failed")
		}
		if st := ca.Stats(names...); st.Issued != 0 {
			t.Errorf("CA issued %d certificates, want 0", st.Issued)
		}
		// The order is ready, never finalized: without a key Resume says
		// order anew; with the journaled key it finalizes that order.
		recs := j.records()
		if len(recs) != 1 {
			t.Fatalf("journal records %+v", recs)
		}
		_, err = iss.Resume(t.Context(), recs[0])
		if !errors.Is(err, renew.ErrOrderGone) || !errors.Is(err, backoff.ErrPermanent) {
			t.Errorf("Resume(never finalized, no key) = %v, want ErrOrderGone", err)
		}
		rec := recs[0]
		rec.Key = key
		got, err := iss.Resume(t.Context(), rec)
		if err != nil {
			t.Fatalf("Resume(never finalized, with its key) = %v", err)
		}
		checkIssued(t, got, renew.IssueRequest{Domains: names, Key: key})
		if st := ca.Stats(names...); st.Orders != 1 || st.Issued != 1 {
			t.Errorf("CA stats %+v, want the journaled order finalized: one order, one issuance", st)
		}
	})
}

// A process paused between its journal and its finalize (a fleet node
// stopped past its lease): another process on the account resumes the
// journaled order, still ready, and finalizes it with the journaled key;
// when the paused process sends its finalize, the CA refuses it
// (orderNotReady) and Issue collects that order's certificate. One order,
// one issuance, the same certificate for both.
func TestResumeFinalizesReadyOrderBeforeAPausedIssue(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	w := newWatch("")
	cfg := fastConfig(t, ca)
	cfg.HTTPClient = watchedClient(ca, w)
	paused := newTestIssuer(t, cfg)
	other := newTestIssuer(t, cfg) // a later process, on the same account
	names := []string{domain("paused")}
	req := renew.IssueRequest{Name: "p", Domains: names, Key: mustKey(t, renew.EC256), Profile: "default"}
	var resumed *renew.Issued
	var resumeErr error
	j := &memJournal{}
	j.hook = func() { // the journaling process is stopped here, before its finalize
		rec := j.records()[0]
		rec.Key = req.Key
		resumed, resumeErr = other.Resume(t.Context(), rec)
	}
	got, err := paused.Issue(t.Context(), req, j.journal)
	if resumeErr != nil {
		t.Fatalf("Resume of the ready order: %v", resumeErr)
	}
	checkIssued(t, resumed, req)
	if err != nil {
		t.Fatalf("the paused Issue, its finalize refused: %v", err)
	}
	checkIssued(t, got, req)
	if got.Leaf.SerialNumber.Cmp(resumed.Leaf.SerialNumber) != 0 || got.OrderURL != resumed.OrderURL {
		t.Errorf("the paused Issue got %x (%s), Resume %x (%s)", got.Leaf.SerialNumber, got.OrderURL, resumed.Leaf.SerialNumber, resumed.OrderURL)
	}
	if n := len(slices.DeleteFunc(w.requests(), func(r string) bool { return !isFinalize(r) })); n != 2 {
		t.Errorf("%d finalize requests, want 2 (Resume's, and the paused one the CA refused)", n)
	}
	if st := ca.Stats(names...); st.Orders != 1 || st.Issued != 1 {
		t.Errorf("CA stats %+v, want one order and one issuance", st)
	}
}

func isFinalize(req string) bool { return strings.Contains(req, "/finalize-order/") }

func TestResume(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	iss := newTestIssuer(t, fastConfig(t, ca))
	names := []string{domain("resume")}
	got, j := issue(t, iss, renew.IssueRequest{Domains: names, Profile: "default"})

	t.Run("valid order downloads the same certificate", func(t *testing.T) {
		// A fresh Issuer on the same account, as in a later process.
		cfg := iss.cfg
		iss2 := newTestIssuer(t, cfg)
		again, err := iss2.Resume(t.Context(), j.records()[0])
		if err != nil {
			t.Fatal(err)
		}
		if again.Leaf.SerialNumber.Cmp(got.Leaf.SerialNumber) != 0 {
			t.Errorf("resumed serial %v, want %v", again.Leaf.SerialNumber, got.Leaf.SerialNumber)
		}
		if st := ca.Stats(names...); st.Orders != 1 || st.Issued != 1 {
			t.Errorf("CA stats %+v, want one order and one issuance", st)
		}
	})
	t.Run("unknown order is gone", func(t *testing.T) {
		rec := j.records()[0]
		rec.OrderURL = strings.TrimRight(rec.OrderURL, "/") + "nosuchorder"
		_, err := iss.Resume(t.Context(), rec)
		if !errors.Is(err, renew.ErrOrderGone) || !errors.Is(err, backoff.ErrPermanent) {
			t.Errorf("Resume(unknown) = %v, want ErrOrderGone", err)
		}
	})
	t.Run("mismatched domains are gone", func(t *testing.T) {
		rec := j.records()[0]
		rec.Domains = []string{"other.example.org"}
		_, err := iss.Resume(t.Context(), rec)
		if !errors.Is(err, renew.ErrOrderGone) {
			t.Errorf("Resume(other domains) = %v, want ErrOrderGone", err)
		}
	})
	t.Run("empty record is gone", func(t *testing.T) {
		_, err := iss.Resume(t.Context(), renew.InFlight{})
		if !errors.Is(err, renew.ErrOrderGone) {
			t.Errorf("Resume(empty) = %v, want ErrOrderGone", err)
		}
	})
}

func TestRenewalInfoAndReplaces(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	iss := newTestIssuer(t, fastConfig(t, ca))
	names := []string{domain("ari")}
	first, _ := issue(t, iss, renew.IssueRequest{Domains: names, Profile: "default"})

	// A fresh Issuer reads ARI without touching the account.
	cfg := fastConfig(t, ca)
	reader := newTestIssuer(t, cfg)
	w, err := reader.RenewalInfo(t.Context(), first.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if !w.End.After(w.Start) || w.Start.Before(first.Leaf.NotBefore) || w.End.After(first.Leaf.NotAfter) {
		t.Errorf("window %v..%v outside the certificate's lifetime %v..%v", w.Start, w.End, first.Leaf.NotBefore, first.Leaf.NotAfter)
	}
	if m, _ := filepath.Glob(filepath.Join(cfg.AccountDir, "account.*")); len(m) != 0 {
		t.Errorf("RenewalInfo created account files %v", m)
	}

	start, end := time.Now().Add(-time.Hour).Truncate(time.Second), time.Now().Add(-time.Minute).Truncate(time.Second)
	if err := ca.SetRenewalWindow(first.Leaf, start, end); err != nil {
		t.Fatal(err)
	}
	w, err = iss.RenewalInfo(t.Context(), first.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Start.Equal(start) || !w.End.Equal(end) {
		t.Errorf("window %v..%v, want the one set: %v..%v", w.Start, w.End, start, end)
	}

	second, _ := issue(t, iss, renew.IssueRequest{Domains: names, Profile: "default", Replaces: first.Leaf})
	if second.AlreadyReplaced {
		t.Errorf("first replacement reported AlreadyReplaced")
	}
	if st := ca.Stats(names...); st.Replacing != 1 {
		t.Errorf("CA saw %d replacing orders, want 1 (stats %+v)", st.Replacing, st)
	}

	// Replacing the same certificate again: the CA says alreadyReplaced,
	// lego re-orders without "replaces", and the result says so.
	third, _ := issue(t, iss, renew.IssueRequest{Domains: names, Profile: "default", Replaces: first.Leaf})
	if !third.AlreadyReplaced {
		t.Errorf("second replacement of the same certificate: AlreadyReplaced = false")
	}
	if st := ca.Stats(names...); st.Replacing != 1 || st.Issued != 3 {
		t.Errorf("CA stats %+v, want 3 issued, 1 replacing", st)
	}
}

func TestEAB(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true, RequireEAB: true})
	kid, hmac := ca.EABKey()

	t.Run("missing", func(t *testing.T) {
		iss := newTestIssuer(t, fastConfig(t, ca))
		err := iss.Connect(t.Context())
		if !errors.Is(err, backoff.ErrPermanent) || !strings.Contains(err.Error(), "External Account Binding") {
			t.Fatalf("Connect = %v, want a permanent error about External Account Binding", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		cfg := fastConfig(t, ca)
		cfg.EAB = &EAB{KeyID: kid, HMAC: "d3JvbmcgaG1hYyBrZXkgdmFsdWUgMDAwMDAwMDAwMDA"}
		iss := newTestIssuer(t, cfg)
		err := iss.Connect(t.Context())
		if !errors.Is(err, backoff.ErrPermanent) {
			t.Fatalf("Connect = %v, want a permanent error", err)
		}
		if strings.Contains(err.Error(), cfg.EAB.HMAC) {
			t.Errorf("error reveals the HMAC: %v", err)
		}
	})
	t.Run("given", func(t *testing.T) {
		cfg := fastConfig(t, ca)
		cfg.EAB = &EAB{KeyID: kid, HMAC: hmac}
		iss := newTestIssuer(t, cfg)
		issue(t, iss, renew.IssueRequest{Domains: []string{domain("eab")}, Profile: "default"})
	})
}

func TestTermsOfServiceMustBeAgreed(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := fastConfig(t, ca)
	cfg.AgreeTOS = false
	iss := newTestIssuer(t, cfg)
	err := iss.Connect(t.Context())
	if !errors.Is(err, backoff.ErrPermanent) || !strings.Contains(err.Error(), "AgreeTOS") {
		t.Fatalf("Connect = %v, want a permanent error naming AgreeTOS", err)
	}
	if ce, ok := errors.AsType[*renew.ConfigError](err); !ok || ce.Field != "AgreeTOS" {
		t.Errorf("Connect = %v, want a *renew.ConfigError for AgreeTOS", err)
	}
}

func TestRenewalInfoUnsupported(t *testing.T) {
	// A directory without renewalInfo: serve testacme's directory minus it.
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	iss := newTestIssuer(t, fastConfig(t, ca))
	got, _ := issue(t, iss, renew.IssueRequest{Domains: []string{domain("noari")}, Profile: "default"})

	cfg := fastConfig(t, ca)
	cfg.HTTPClient = func() *http.Client {
		c := ca.HTTPClient()
		c.Transport = stripARI{c.Transport}
		return c
	}
	noARI := newTestIssuer(t, cfg)
	_, err := noARI.RenewalInfo(t.Context(), got.Leaf)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("RenewalInfo = %v, want errors.ErrUnsupported", err)
	}
	// And an order replacing a certificate is sent without "replaces".
	again, _ := issue(t, noARI, renew.IssueRequest{Domains: got.Leaf.DNSNames, Profile: "default", Replaces: got.Leaf})
	if again.AlreadyReplaced {
		t.Errorf("AlreadyReplaced without ARI")
	}
}

func TestCloseReleasesListener(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	iss, err := New(t.Context(), testConfig(t, ca))
	if err != nil {
		t.Fatal(err)
	}
	issue(t, iss, renew.IssueRequest{Domains: []string{domain("close")}, Profile: "default"})
	if err := iss.Close(); err != nil {
		t.Fatal(err)
	}
	if err := iss.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ln, err := net.Listen("tcp", ca.HTTP01Addr())
	if err != nil {
		t.Fatalf("HTTP-01 address still bound after Close: %v", err)
	}
	ln.Close()
	_, err = iss.Issue(t.Context(), renew.IssueRequest{Name: "c", Domains: []string{domain("closed")}, Key: mustKey(t, renew.EC256)},
		func(context.Context, renew.InFlight) error { return nil })
	if !errors.Is(err, errClosed) || !errors.Is(err, backoff.ErrPermanent) {
		t.Errorf("Issue after Close = %v, want errClosed", err)
	}
}

func TestPollHonoursRetryAfter(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	iss := newTestIssuer(t, fastConfig(t, ca))
	if err := iss.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The first order poll is refused with Retry-After: 1; the poll waits
	// that long (not PollInterval) and then succeeds.
	defer ca.Inject(testacme.Fault{Endpoint: testacme.EndpointOrder, Kind: testacme.FaultProblem, Problem: "serverInternal", Status: 503, RetryAfter: time.Second, Count: 1})()
	start := time.Now()
	issue(t, iss, renew.IssueRequest{Domains: []string{domain("retry")}, Profile: "default"})
	if d := time.Since(start); d < time.Second {
		t.Errorf("Issue took %v: it did not wait out the CA's Retry-After of 1s", d)
	}

	// A Retry-After that would pass the deadline ends the poll at once,
	// rate-limited with the CA's delay.
	cfg := fastConfig(t, ca)
	cfg.AccountDir = iss.cfg.AccountDir
	cfg.ValidationTimeout = 500 * time.Millisecond
	short := newTestIssuer(t, cfg)
	defer ca.Inject(testacme.Fault{Endpoint: testacme.EndpointOrder, Kind: testacme.FaultProblem, Problem: "serverInternal", Status: 503, RetryAfter: time.Hour, Count: 1})()
	_, err := short.Issue(t.Context(), renew.IssueRequest{Name: "r", Domains: []string{domain("retry")}, Key: mustKey(t, renew.EC256), Profile: "default"},
		func(context.Context, renew.InFlight) error { return nil })
	var e *Error
	if backoff.ClassOf(err) != backoff.ClassRateLimited || !errors.As(err, &e) || e.RetryAfter != time.Hour {
		t.Errorf("err = %v, want rate-limited with the CA's 1h", err)
	}
}

// BenchmarkIssue measures one issuance (one name, EC256 key generated per
// order) against the in-process CA, with real HTTP-01 validation over
// loopback and with validation skipped.
func BenchmarkIssue(b *testing.B) {
	for _, tt := range []struct {
		name string
		opts testacme.Options
	}{
		{"http01", testacme.Options{}},
		{"alwaysvalid", testacme.Options{AlwaysValid: true}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			ca := startCA(b, tt.opts)
			cfg := testConfig(b, ca)
			cfg.Logger = nil
			iss := newTestIssuer(b, cfg)
			if err := iss.Connect(b.Context()); err != nil {
				b.Fatal(err)
			}
			journal := func(context.Context, renew.InFlight) error { return nil }
			for b.Loop() {
				key := mustKey(b, renew.EC256)
				if _, err := iss.Issue(b.Context(), renew.IssueRequest{Name: "bench", Domains: []string{domain("bench")}, Key: key, Profile: "default"}, journal); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestIssueNormalizesDomains(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	iss := newTestIssuer(t, fastConfig(t, ca))
	name := domain("norm")
	j := &memJournal{}
	got, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "n", Domains: []string{strings.ToUpper(name) + ".", name}, Key: mustKey(t, renew.EC256), Profile: "default"}, j.journal)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Leaf.DNSNames, []string{name}) {
		t.Errorf("leaf names %v, want [%s]", got.Leaf.DNSNames, name)
	}
	if recs := j.records(); len(recs) != 1 || !slices.Equal(recs[0].Domains, []string{name}) {
		t.Errorf("journal %+v, want the normalized name", recs)
	}
}

// Regression (issue 11, item 14): a non-canonical IPv6 identifier was
// ordered as written; the CA echoes "::1", lego refused the changed
// identifiers, and every order failed.
func TestIssueNonCanonicalIP(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	iss := newTestIssuer(t, fastConfig(t, ca))
	req := renew.IssueRequest{Name: "ip", Domains: []string{"::0001", domain("ip"), "::1"}, Key: mustKey(t, renew.EC256), Profile: "default"}
	j := &memJournal{}
	got, err := iss.Issue(t.Context(), req, j.journal)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	checkIssued(t, got, req)
	if recs := j.records(); len(recs) != 1 || !slices.Equal(recs[0].Domains, []string{"::1", req.Domains[1]}) {
		t.Errorf("journal records %+v, want one for [::1 %s]", recs, req.Domains[1])
	}
}

// beforeFinalize runs hook (once) when a finalize request is about to be
// sent, then sends it.
type beforeFinalize struct {
	base http.RoundTripper
	once sync.Once
	hook func()
}

func (b *beforeFinalize) RoundTrip(req *http.Request) (*http.Response, error) {
	if isFinalize(req.URL.Path) {
		b.once.Do(b.hook)
	}
	return b.base.RoundTrip(req)
}

// Two processes resume the same ready order at once: the second one's
// finalize reaches the CA after the first's and is refused
// (orderNotReady); it fetches the order again and collects the same
// certificate. One issuance.
func TestResumeFinalizeRefusedCollectsTheOrder(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := fastConfig(t, ca)
	first := newTestIssuer(t, cfg)
	names := []string{domain("twice")}
	key := mustKey(t, renew.EC256)
	j := &memJournal{err: errors.New("stopped before finalize")}
	if _, err := first.Issue(t.Context(), renew.IssueRequest{Name: "t", Domains: names, Key: key, Profile: "default"}, j.journal); err == nil {
		t.Fatal("Issue finalized although its journal failed")
	}
	rec := j.records()[0]
	rec.Key = key

	var firstGot *renew.Issued
	var firstErr error
	late := cfg
	late.HTTPClient = func() *http.Client {
		c := ca.HTTPClient()
		c.Transport = &beforeFinalize{base: c.Transport, hook: func() {
			firstGot, firstErr = first.Resume(t.Context(), rec) // it wins the race
		}}
		return c
	}
	second := newTestIssuer(t, late)
	got, err := second.Resume(t.Context(), rec)
	if firstErr != nil {
		t.Fatalf("the first Resume: %v", firstErr)
	}
	if err != nil {
		t.Fatalf("the second Resume, its finalize refused: %v", err)
	}
	req := renew.IssueRequest{Domains: names, Key: key}
	checkIssued(t, firstGot, req)
	checkIssued(t, got, req)
	if got.Leaf.SerialNumber.Cmp(firstGot.Leaf.SerialNumber) != 0 {
		t.Errorf("the two Resumes got %x and %x", got.Leaf.SerialNumber, firstGot.Leaf.SerialNumber)
	}
	if st := ca.Stats(names...); st.Orders != 1 || st.Issued != 1 {
		t.Errorf("CA stats %+v, want one order and one issuance", st)
	}
}
