package expiry

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/testpki"
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
	root, err := testpki.NewCA(&x509.Certificate{
		Subject:   pkix.Name{CommonName: "test root"},
		NotBefore: v.NotBefore.Add(-365 * day), NotAfter: v.NotAfter.Add(365 * day),
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	inter, err := testpki.NewCA(&x509.Certificate{
		Subject:   pkix.Name{CommonName: "test intermediate"},
		NotBefore: v.NotBefore.Add(-30 * day), NotAfter: v.NotAfter.Add(30 * day),
	}, root)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := inter.Issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: "example.test"}, DNSNames: []string{"example.test"},
		NotBefore: v.NotBefore, NotAfter: v.NotAfter,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return testPKI{
		leaf: leaf.Cert, inter: inter.Cert, root: root.Cert,
		leafPEM: leaf.CertPEM, interPEM: inter.PEM, rootPEM: root.PEM,
		keyPEM: leaf.KeyPEM,
	}
}

// decideU is DecideAt with the instant at position u of w (the tests'
// form: u in [0, 1) is what they vary).
func decideU(now time.Time, v Validity, p Policy, w *Window, u float64) Decision {
	return decide(now, v, p, w, func(w *Window) time.Time { return w.At(u) })
}
