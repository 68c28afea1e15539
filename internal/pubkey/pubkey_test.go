package pubkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
)

func TestEqual(t *testing.T) {
	k1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ed, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k1Copy := k1.PublicKey // same value, another pointer
	cases := []struct {
		name string
		a, b crypto.PublicKey
		want bool
	}{
		{"same key", k1.Public(), k1.Public(), true},
		{"same value", k1.Public(), &k1Copy, true},
		{"other key", k1.Public(), k2.Public(), false},
		{"other type", k1.Public(), ed, false},
		{"nil", nil, k1.Public(), false},
		{"no Equal method", struct{}{}, struct{}{}, false},
	}
	for _, c := range cases {
		if got := Equal(c.a, c.b); got != c.want {
			t.Errorf("%s: Equal = %v, want %v", c.name, got, c.want)
		}
	}
}
