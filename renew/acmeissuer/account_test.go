package acmeissuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"

	"errors"
)

func readRecord(t *testing.T, dir string) accountRecord {
	t.Helper()
	rec, err := readAccountRecord(filepath.Join(dir, accountRecordFile))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func countRequests(w *watchTransport, substr string) int {
	n := 0
	for _, r := range w.requests() {
		if strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

func TestAccountCreatedOnceAndReused(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	w := newWatch("")
	cfg := fastConfig(t, ca)
	cfg.HTTPClient = watchedClient(ca, w)

	first := newTestIssuer(t, cfg)
	if err := first.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec := readRecord(t, cfg.AccountDir)
	if rec.URL == "" || rec.DirectoryURL != ca.DirectoryURL() || rec.Email != cfg.Email || rec.Created.IsZero() {
		t.Errorf("account record %+v", rec)
	}
	for _, f := range []string{accountKeyFile, accountRecordFile} {
		fi, err := os.Stat(filepath.Join(cfg.AccountDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	keyPEM, err := os.ReadFile(filepath.Join(cfg.AccountDir, accountKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if ek, ok := key.(*ecdsa.PrivateKey); !ok || ek.Curve != elliptic.P256() {
		t.Errorf("account key is %T, want ECDSA P-256", key)
	}
	issue(t, first, renew.IssueRequest{Domains: []string{domain("acct")}, Profile: "default"})

	// A second Issuer (a later run) uses the record: no newAccount at all.
	before := countRequests(w, "/sign-me-up")
	second := newTestIssuer(t, cfg)
	issue(t, second, renew.IssueRequest{Domains: []string{domain("acct")}, Profile: "default"})
	if n := countRequests(w, "/sign-me-up") - before; n != 0 {
		t.Errorf("second Issuer sent %d newAccount requests, want 0", n)
	}

	// Key kept, record lost (killed between registration and the record):
	// the account is found by its key, not registered again.
	if err := os.Remove(filepath.Join(cfg.AccountDir, accountRecordFile)); err != nil {
		t.Fatal(err)
	}
	third := newTestIssuer(t, cfg)
	if err := third.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := readRecord(t, cfg.AccountDir); got.URL != rec.URL {
		t.Errorf("re-resolved account %s, want the original %s", got.URL, rec.URL)
	}
	issue(t, third, renew.IssueRequest{Domains: []string{domain("acct")}, Profile: "default"})
}

func TestAccountConcurrentFirstRuns(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	w := newWatch("")
	cfg := fastConfig(t, ca)
	cfg.HTTPClient = watchedClient(ca, w)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		iss := newTestIssuer(t, cfg)
		wg.Go(func() { errs[i] = iss.Connect(t.Context()) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One lookup by key (not found) and one registration; the others read
	// the record under the lock.
	if got := countRequests(w, "/sign-me-up"); got != 2 {
		t.Errorf("%d newAccount requests, want 2: %v", got, w.requests())
	}
}

func TestAccountAcrossProcesses(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := fastConfig(t, ca)
	iss := newTestIssuer(t, cfg)
	if err := iss.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := readRecord(t, cfg.AccountDir).URL
	out := filepath.Join(t.TempDir(), "account-url")
	runHelper(t, "connect", ca, cfg.AccountDir, "", out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("child process used account %s, want %s", got, want)
	}
}

func TestAccountRecordWithoutKey(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := fastConfig(t, ca)
	if err := newTestIssuer(t, cfg).Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(cfg.AccountDir, accountKeyFile)); err != nil {
		t.Fatal(err)
	}
	err := newTestIssuer(t, cfg).Connect(t.Context())
	if !errors.Is(err, backoff.ErrPermanent) || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("Connect = %v, want a permanent error about the missing key", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.AccountDir, accountKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a new account key was created next to the old record")
	}
}

func TestAccountOtherDirectory(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := fastConfig(t, ca)
	if err := newTestIssuer(t, cfg).Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec := readRecord(t, cfg.AccountDir)
	rec.DirectoryURL = "https://other.ca.test/dir"
	data, _ := json.Marshal(rec)
	if err := os.WriteFile(filepath.Join(cfg.AccountDir, accountRecordFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	err := newTestIssuer(t, cfg).Connect(t.Context())
	if !errors.Is(err, backoff.ErrPermanent) || !strings.Contains(err.Error(), "one AccountDir per CA") {
		t.Fatalf("Connect = %v, want a permanent error about the directory", err)
	}
}
