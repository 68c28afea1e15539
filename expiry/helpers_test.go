package expiry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

const day = 24 * time.Hour

// t0 is an arbitrary fixed instant the tests build validity periods around.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// span returns a Validity starting at t0 lasting lifetime.
func span(lifetime time.Duration) Validity {
	return Validity{NotBefore: t0, NotAfter: t0.Add(lifetime)}
}

// testPKI is a root, an intermediate and a leaf, with their PEM.
type testPKI struct {
	leaf, inter, root          *x509.Certificate
	leafPEM, interPEM, rootPEM []byte
	keyPEM                     []byte // the leaf's private key
}

// newPKI issues a three-certificate chain whose leaf is valid over v.
func newPKI(tb testing.TB, v Validity) testPKI {
	tb.Helper()
	rootKey, rootCert, rootPEM := mkCert(tb, nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "test root"}, IsCA: true,
		NotBefore: v.NotBefore.Add(-365 * day), NotAfter: v.NotAfter.Add(365 * day),
	})
	interKey, interCert, interPEM := mkCert(tb, rootCert, rootKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "test intermediate"}, IsCA: true,
		NotBefore: v.NotBefore.Add(-30 * day), NotAfter: v.NotAfter.Add(30 * day),
	})
	leafKey, leafCert, leafPEM := mkCert(tb, interCert, interKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "example.test"}, DNSNames: []string{"example.test"},
		NotBefore: v.NotBefore, NotAfter: v.NotAfter,
	})
	der, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		tb.Fatal(err)
	}
	return testPKI{
		leaf: leafCert, inter: interCert, root: rootCert,
		leafPEM: leafPEM, interPEM: interPEM, rootPEM: rootPEM,
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
	}
}

func mkCert(tb testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, big.NewInt(1<<62)); err != nil {
		tb.Fatal(err)
	}
	tmpl.BasicConstraintsValid = true
	if tmpl.IsCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// decideU is DecideAt with the instant at position u of w (the tests'
// form: u in [0, 1) is what they vary).
func decideU(now time.Time, v Validity, p Policy, w *Window, u float64) Decision {
	return decide(now, v, p, w, func(w *Window) time.Time { return w.At(u) })
}
