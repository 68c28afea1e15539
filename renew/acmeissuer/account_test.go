package acmeissuer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"io/fs"
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

// Regression (issue 11, item 6): an account the CA no longer knows (a CA
// reset, a test CA restarted) failed every later run until someone deleted
// account.json. It is registered again once, with the same key, or with a
// new one when the CA refuses that key, and the order goes ahead.
func TestAccountForgottenByCA(t *testing.T) {
	for _, refuseKey := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuseKey=%v", refuseKey), func(t *testing.T) {
			ca := startCA(t, testacme.Options{AlwaysValid: true})
			cfg := fastConfig(t, ca)
			iss := newTestIssuer(t, cfg)
			name := domain("forgotten")
			prev, _ := issue(t, iss, renew.IssueRequest{Domains: []string{name}, Profile: "default"})
			keyPath := filepath.Join(cfg.AccountDir, accountKeyFile)
			oldKey, err := os.ReadFile(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			oldURL := readRecord(t, cfg.AccountDir).URL
			if err := ca.ForgetAccount(oldURL, refuseKey); err != nil {
				t.Fatal(err)
			}

			// The renewal names its predecessor, which the forgotten
			// account ordered: the new account may not replace it (RFC
			// 9773 §5), so the order goes ahead without "replaces".
			issue(t, iss, renew.IssueRequest{Domains: []string{name}, Profile: "default", Replaces: prev.Leaf})

			rec := readRecord(t, cfg.AccountDir)
			if rec.URL == oldURL {
				t.Errorf("account.json still names the forgotten account %s", oldURL)
			}
			newKey, err := os.ReadFile(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			kept, keptErr := os.ReadFile(filepath.Join(cfg.AccountDir, oldAccountKeyFile))
			if refuseKey {
				if bytes.Equal(newKey, oldKey) {
					t.Error("the refused key is still account.key")
				}
				if !bytes.Equal(kept, oldKey) {
					t.Errorf("account.key.old does not hold the refused key (%v)", keptErr)
				}
			} else {
				if !bytes.Equal(newKey, oldKey) {
					t.Error("account.key changed although the CA accepted it")
				}
				if !errors.Is(keptErr, fs.ErrNotExist) {
					t.Errorf("account.key.old exists: %v", keptErr)
				}
			}
			// A later process uses the new account without a detour.
			next := newTestIssuer(t, cfg)
			issue(t, next, renew.IssueRequest{Domains: []string{domain("forgotten")}, Profile: "default"})
			if got := readRecord(t, cfg.AccountDir).URL; got != rec.URL {
				t.Errorf("the next process moved to account %s from %s", got, rec.URL)
			}
		})
	}
}

// A journaled order of a forgotten account: Resume registers the account
// again and reports the order gone (it belonged to the old account), so the
// caller orders anew with the new account.
func TestResumeAfterAccountForgotten(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := fastConfig(t, ca)
	iss := newTestIssuer(t, cfg)
	got, _ := issue(t, iss, renew.IssueRequest{Domains: []string{domain("resume-forgotten")}, Profile: "default"})
	if err := ca.ForgetAccount(readRecord(t, cfg.AccountDir).URL, false); err != nil {
		t.Fatal(err)
	}
	_, err := iss.Resume(t.Context(), renew.InFlight{OrderURL: got.OrderURL, Domains: []string{got.Leaf.DNSNames[0]}})
	if !errors.Is(err, renew.ErrOrderGone) {
		t.Fatalf("Resume = %v, want ErrOrderGone", err)
	}
	issue(t, iss, renew.IssueRequest{Domains: []string{domain("resume-forgotten")}, Profile: "default"})
}
