package acmeissuer

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

// AccountKey creates the key once (0600) without contacting the CA, and
// returns the same key afterwards; an Issuer then uses it.
func TestConfigAccountKey(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := fastConfig(t, ca)
	cfg.AccountDir = filepath.Join(t.TempDir(), "acct") // created by AccountKey
	first, err := cfg.AccountKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseKey(first); err != nil {
		t.Fatalf("AccountKey returned no PEM private key: %v", err)
	}
	path := filepath.Join(cfg.AccountDir, accountKeyFile)
	onDisk, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(onDisk, first) {
		t.Fatalf("account.key %q (%v) is not the key returned", onDisk, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("account.key mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(cfg.AccountDir, accountRecordFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("account.json exists after AccountKey (%v): it must not contact the CA", err)
	}
	again, err := cfg.AccountKey(t.Context())
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("second AccountKey: a different key (%v)", err)
	}
	iss := newTestIssuer(t, cfg)
	issue(t, iss, renew.IssueRequest{Domains: []string{domain("ak")}, Profile: "default"})
	if got, _ := os.ReadFile(path); !bytes.Equal(got, first) {
		t.Fatal("the Issuer replaced the key AccountKey created")
	}

	// The directory's trust rules apply.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.AccountKey(t.Context()); !errors.Is(err, renew.ErrLocal) {
		t.Errorf("AccountKey of a key readable by others: %v, want a local error", err)
	}
}

// A node that adopts another node's account key resumes that node's order
// (an order belongs to the account that placed it): without adopting, the
// CA refuses it (ErrOrderGone). After adopting, its Issuer finds the
// account by its key, even without AgreeTOS, and no second certificate is
// issued.
func TestConfigAdoptAccountKey(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfgA := fastConfig(t, ca)
	cfgB := fastConfig(t, ca)
	cfgB.AgreeTOS = false
	ctx := t.Context()

	names := []string{domain("adopt")}
	issA := newTestIssuer(t, cfgA)
	got, j := issue(t, issA, renew.IssueRequest{Domains: names, Profile: "default"})
	rec := j.records()[0]
	keyA, err := cfgA.AccountKey(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// B has its own account: A's order is not its own.
	own := fastConfig(t, ca)
	if _, err := newTestIssuer(t, own).Resume(ctx, rec); !errors.Is(err, renew.ErrOrderGone) {
		t.Fatalf("Resume of another account's order: %v, want ErrOrderGone", err)
	}

	keyB, err := cfgB.AccountKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// B once had an account record (of its own key's account).
	recPath := filepath.Join(cfgB.AccountDir, accountRecordFile)
	if err := os.WriteFile(recPath, []byte(`{"url":"https://x/acct/b","directory_url":"`+ca.DirectoryURL()+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	adopted, err := cfgB.AdoptAccountKey(ctx, keyA)
	if err != nil || !adopted {
		t.Fatalf("AdoptAccountKey = %v, %v; want true", adopted, err)
	}
	dir := cfgB.AccountDir
	if k, _ := os.ReadFile(filepath.Join(dir, accountKeyFile)); !bytes.Equal(k, keyA) {
		t.Error("account.key is not the adopted key")
	}
	if k, _ := os.ReadFile(filepath.Join(dir, oldAccountKeyFile)); !bytes.Equal(k, keyB) {
		t.Error("account.key.old is not the previous key")
	}
	for _, f := range []string{accountKeyFile, oldAccountKeyFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(recPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("account.json of the previous key still exists (%v)", err)
	}
	if adopted, err := cfgB.AdoptAccountKey(ctx, keyA); err != nil || adopted {
		t.Errorf("adopting the key in use again = %v, %v; want false", adopted, err)
	}

	issB := newTestIssuer(t, cfgB)
	res, err := issB.Resume(ctx, rec)
	if err != nil {
		t.Fatalf("Resume with the adopted account: %v", err)
	}
	if res.Leaf.SerialNumber.Cmp(got.Leaf.SerialNumber) != 0 {
		t.Errorf("resumed serial %x, want %x", res.Leaf.SerialNumber, got.Leaf.SerialNumber)
	}
	if st := ca.Stats(names...); st.Issued != 1 {
		t.Errorf("CA issued %d certificates for %v, want 1", st.Issued, names)
	}
	if a, b := readRecord(t, cfgA.AccountDir), readRecord(t, dir); a.URL != b.URL {
		t.Errorf("B's account %s, want A's %s", b.URL, a.URL)
	}

	if _, err := cfgB.AdoptAccountKey(ctx, []byte("not a key")); err == nil {
		t.Error("adopting a non-key succeeded")
	}
	if k, _ := os.ReadFile(filepath.Join(dir, accountKeyFile)); !bytes.Equal(k, keyA) {
		t.Error("a refused adoption changed account.key")
	}
}
