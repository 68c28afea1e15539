// Package testpki issues certificates for tests: certificate authorities
// and the leaves they sign, with ECDSA P-256 keys, as parsed certificates
// and PEM. It is the one certificate generator of the module's tests;
// nothing outside tests may use it (its keys are not protected and its
// defaults suit tests only).
//
// Templates are filled in where left zero: a random serial number,
// validity from an hour before now to a day after, basic constraints, and
// the key usages of a CA (certificate signing) or a TLS server leaf.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// CA is a certificate authority: its key and certificate.
type CA struct {
	Key  *ecdsa.PrivateKey
	Cert *x509.Certificate
	// PEM is Cert in PEM, as a chain file holds it.
	PEM []byte
}

// Leaf is a private key and the certificate issued for it.
type Leaf struct {
	Key  *ecdsa.PrivateKey
	Cert *x509.Certificate
	// CertPEM is Cert in PEM.
	CertPEM []byte
	// KeyPEM is Key in PKCS #8 PEM ("PRIVATE KEY").
	KeyPEM []byte
}

// NewCA returns a new CA whose certificate is made from tmpl (nil: a CA
// named "renewkit test CA"), signed by parent, or self-signed (a root) when
// parent is nil. IsCA is set whatever tmpl says.
func NewCA(tmpl *x509.Certificate, parent *CA) (*CA, error) {
	if tmpl == nil {
		tmpl = &x509.Certificate{Subject: pkix.Name{CommonName: "renewkit test CA"}}
	}
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	signer := &CA{Key: key}
	if parent != nil {
		signer = parent
	}
	cert, certPEM, err := signer.sign(tmpl, key.Public())
	if err != nil {
		return nil, err
	}
	return &CA{Key: key, Cert: cert, PEM: certPEM}, nil
}

// Issue returns a new key and a leaf certificate for it made from tmpl
// (nil: one for "example.com"), signed by ca.
func (ca *CA) Issue(tmpl *x509.Certificate) (*Leaf, error) {
	if tmpl == nil {
		tmpl = &x509.Certificate{Subject: pkix.Name{CommonName: "example.com"}, DNSNames: []string{"example.com"}}
	}
	return newLeaf(ca, tmpl)
}

// Sign returns a certificate made from tmpl for pub (a key the caller
// holds, as a CA receives it in a request), signed by ca, parsed and in
// PEM.
func (ca *CA) Sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, []byte, error) {
	return ca.sign(tmpl, pub)
}

// SelfSigned returns a new key and a leaf certificate for it made from
// tmpl and signed by that same key.
func SelfSigned(tmpl *x509.Certificate) (*Leaf, error) {
	return newLeaf(nil, tmpl)
}

// newLeaf makes a new key and a certificate for it from tmpl, signed by
// ca, or by the new key itself when ca is nil.
func newLeaf(ca *CA, tmpl *x509.Certificate) (*Leaf, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	if ca == nil {
		ca = &CA{Key: key}
	}
	cert, certPEM, err := ca.sign(tmpl, key.Public())
	if err != nil {
		return nil, err
	}
	keyPEM, err := KeyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Leaf{Key: key, Cert: cert, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// NewKey returns a new ECDSA P-256 key.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// KeyPEM encodes key in PKCS #8 PEM ("PRIVATE KEY").
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("testpki: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// sign fills in tmpl's zero fields and signs it for pub with ca.Key; a ca
// without Cert signs tmpl with itself as the parent (self-signed).
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, []byte, error) {
	if tmpl.SerialNumber == nil {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
		if err != nil {
			return nil, nil, fmt.Errorf("testpki: serial: %w", err)
		}
		tmpl.SerialNumber = serial
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl.BasicConstraintsValid = true
	if tmpl.KeyUsage == 0 {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if tmpl.IsCA {
			tmpl.KeyUsage = x509.KeyUsageCertSign
		}
	}
	if tmpl.ExtKeyUsage == nil && !tmpl.IsCA {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	parent := ca.Cert
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("testpki: sign %v: %w", tmpl.Subject, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("testpki: %w", err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
