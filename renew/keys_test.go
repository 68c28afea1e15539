package renew

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os/exec"
	"strings"
	"testing"
)

// TestRenewDoesNotImportLego: only renew/acmeissuer may depend on the ACME
// client; renew itself uses the standard library for keys.
func TestRenewDoesNotImportLego(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list renew's dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/go-acme/") {
			t.Errorf("renew depends on %s; only renew/acmeissuer may import lego", dep)
		}
	}
}

// TestKeyRoundTrip: every key type Generate makes is written as PKCS #8
// and read back as the same key.
func TestKeyRoundTrip(t *testing.T) {
	for _, kt := range []KeyType{"", EC256, EC384, RSA2048} {
		key, err := kt.Generate()
		if err != nil {
			t.Fatalf("%q: %v", kt, err)
		}
		if got := keyTypeOf(key.Public()); got != kt.orDefault() {
			t.Fatalf("%q.Generate() made a %q key", kt, got)
		}
		b, err := encodeKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if blk, _ := pem.Decode(b); blk == nil || blk.Type != "PRIVATE KEY" {
			t.Fatalf("%q: encoded as %q, want one PKCS #8 PRIVATE KEY block", kt, b[:min(len(b), 40)])
		}
		back, err := parseKey(b)
		if err != nil {
			t.Fatalf("%q: %v", kt, err)
		}
		if !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Fatalf("%q: parsed key differs", kt)
		}
	}
	if _, err := KeyType("rsa1024").Generate(); err == nil {
		t.Fatal("Generate accepted rsa1024")
	}
}

// TestParseKeyFormats: keys in the older PKCS #1 and SEC 1 forms (what
// other tools write into privkey.pem) are read too; other blocks are not.
func TestParseKeyFormats(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	for _, tc := range []struct {
		name string
		blk  *pem.Block
		ok   bool
	}{
		{"sec1", &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}, true},
		{"pkcs1", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}, true},
		{"ed25519", &pem.Block{Type: "PRIVATE KEY", Bytes: edDER}, true},
		{"certificate", &pem.Block{Type: "CERTIFICATE", Bytes: ecDER}, false},
		{"garbage", &pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret-bytes")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseKey(pem.EncodeToMemory(tc.blk))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Fatalf("error shows key material: %v", err)
			}
		})
	}
	if _, err := parseKey([]byte("no pem here")); err == nil {
		t.Fatal("parsed a key from no PEM")
	}
}
