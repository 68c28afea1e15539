package acmeissuer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/renewkit/renewkit/internal/pubkey"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

// An account another client registered, adopted as a JSON Web Key (as
// certbot stores it) with its URL, into an empty account directory (AgreeTOS false: nothing is
// registered): the next order is the adopted account's.
func TestConfigAdoptAccount(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfgA := fastConfig(t, ca)
	ctx := t.Context()
	issue(t, newTestIssuer(t, cfgA), renew.IssueRequest{Domains: []string{domain("other")}, Profile: "default"})
	keyA, err := cfgA.AccountKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	urlA := readRecord(t, cfgA.AccountDir).URL
	signer, err := parseKey(keyA)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: signer})
	if err != nil {
		t.Fatal(err)
	}

	cfgB := fastConfig(t, ca)
	cfgB.AgreeTOS = false
	cfgB.AccountDir = filepath.Join(t.TempDir(), "acct")
	adopted, err := cfgB.AdoptAccount(ctx, jwk, urlA)
	if err != nil || !adopted {
		t.Fatalf("AdoptAccount = %v, %v; want true", adopted, err)
	}
	if _, err := os.Stat(filepath.Join(cfgB.AccountDir, oldAccountKeyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an empty account directory got an account.key.old (%v)", err)
	}
	data, err := os.ReadFile(filepath.Join(cfgB.AccountDir, accountKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := parseKey(data); err != nil || !pubkey.Equal(got.Public(), signer.Public()) {
		t.Fatalf("account.key is not the adopted key (%v)", err)
	}
	if fi, err := os.Stat(filepath.Join(cfgB.AccountDir, accountKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("account.key: %v, want mode 0600", err)
	}
	if rec := readRecord(t, cfgB.AccountDir); rec.URL != urlA || rec.DirectoryURL != ca.DirectoryURL() {
		t.Errorf("account.json names %s at %s, want %s at %s", rec.URL, rec.DirectoryURL, urlA, ca.DirectoryURL())
	}
	if adopted, err := cfgB.AdoptAccount(ctx, keyA, urlA); err != nil || adopted {
		t.Errorf("adopting the same account again (as PEM) = %v, %v; want false, nil", adopted, err)
	}
	if _, err := cfgB.AdoptAccount(ctx, keyA, "https://ca.example/acct/other"); err == nil {
		t.Error("the same key under another account URL was accepted")
	}
	issue(t, newTestIssuer(t, cfgB), renew.IssueRequest{Domains: []string{domain("adopted")}, Profile: "default"})
	if rec := readRecord(t, cfgB.AccountDir); rec.URL != urlA {
		t.Errorf("after an order, account.json names %s, want the adopted %s", rec.URL, urlA)
	}

	// Another account in the directory is not replaced.
	cfgC := fastConfig(t, ca)
	keyC, err := cfgC.AccountKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfgC.AdoptAccount(ctx, keyA, urlA); !errors.Is(err, fs.ErrExist) {
		t.Errorf("AdoptAccount over another account: %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(filepath.Join(cfgC.AccountDir, accountKeyFile)); !bytes.Equal(got, keyC) {
		t.Error("a refused adoption replaced the other account's key")
	}

	// Bad input changes nothing.
	for name, in := range map[string][2]string{
		"public JWK":   {`{"kty":"EC","crv":"P-256","x":"` + pubOnlyX(t, jwk) + `","y":"` + pubOnlyY(t, jwk) + `"}`, urlA},
		"garbage key":  {"not a key", urlA},
		"relative URL": {string(keyA), "/acct/1"},
	} {
		if _, err := cfgB.AdoptAccount(ctx, []byte(in[0]), in[1]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(cfgB.AccountDir, accountKeyFile)); !bytes.Equal(got, data) {
		t.Error("a refused adoption changed account.key")
	}
}

func jwkField(t *testing.T, jwk []byte, f string) string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(jwk, &m); err != nil {
		t.Fatal(err)
	}
	return m[f]
}

func pubOnlyX(t *testing.T, jwk []byte) string { return jwkField(t, jwk, "x") }
func pubOnlyY(t *testing.T, jwk []byte) string { return jwkField(t, jwk, "y") }
