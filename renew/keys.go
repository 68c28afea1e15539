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
	"errors"
	"fmt"
	"strings"
)

// Generate creates a new private key of type k (EC256 when k is empty),
// from crypto/rand. An unknown type is an error naming the known ones.
func (k KeyType) Generate() (crypto.Signer, error) {
	var (
		key crypto.Signer
		err error
	)
	switch k.orDefault() {
	case EC256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EC384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		return nil, k.unknown()
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", k.orDefault(), err)
	}
	return key, nil
}

// unknown is the error for a key type that is none of ours.
func (k KeyType) unknown() error {
	return fmt.Errorf("unknown key type %q (want ec256, ec384, rsa2048, rsa3072 or rsa4096)", string(k))
}

// encodeKey returns key as one PKCS #8 "PRIVATE KEY" PEM block, the form
// written to privkey.pem, combined.pem and pending.key.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseKey parses the first PEM block of data as a private key: PKCS #8,
// PKCS #1 (RSA) or SEC 1 (EC), whatever " PRIVATE KEY" type the block
// says. Its errors never include key material.
func parseKey(data []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if blk.Type != "PRIVATE KEY" && !strings.HasSuffix(blk.Type, " PRIVATE KEY") {
		return nil, fmt.Errorf("PEM block of type %q, not a private key", blk.Type)
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("unreadable private key")
}
