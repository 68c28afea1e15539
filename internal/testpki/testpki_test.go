package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

func TestChainVerifies(t *testing.T) {
	root, err := NewCA(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := NewCA(&x509.Certificate{Subject: pkix.Name{CommonName: "inter"}}, root)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := inter.Issue(&x509.Certificate{DNSNames: []string{"a.example"}, SerialNumber: big.NewInt(42)})
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Cert)
	inters.AddCert(inter.Cert)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: "a.example", Roots: roots, Intermediates: inters}); err != nil {
		t.Fatalf("chain: %v", err)
	}
	if leaf.Cert.SerialNumber.Int64() != 42 || leaf.Cert.IsCA || !inter.Cert.IsCA {
		t.Errorf("serial %v, leaf IsCA %v, intermediate IsCA %v", leaf.Cert.SerialNumber, leaf.Cert.IsCA, inter.Cert.IsCA)
	}
	if _, err := tls.X509KeyPair(append(leaf.CertPEM, inter.PEM...), leaf.KeyPEM); err != nil {
		t.Fatalf("key and certificate PEM do not pair: %v", err)
	}
}

func TestSelfSignedAndSign(t *testing.T) {
	notAfter := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	self, err := SelfSigned(&x509.Certificate{DNSNames: []string{"self.example"}, NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	if err := self.Cert.CheckSignature(self.Cert.SignatureAlgorithm, self.Cert.RawTBSCertificate, self.Cert.Signature); err != nil {
		t.Fatalf("not self-signed: %v", err)
	}
	if !self.Cert.NotAfter.Equal(notAfter) || self.Cert.NotBefore.IsZero() || self.Cert.SerialNumber.Sign() <= 0 {
		t.Errorf("validity %v..%v serial %v", self.Cert.NotBefore, self.Cert.NotAfter, self.Cert.SerialNumber)
	}
	ca, err := NewCA(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.Sign(&x509.Certificate{DNSNames: []string{"b.example"}}, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil || !key.PublicKey.Equal(cert.PublicKey) {
		t.Fatalf("Sign: %v, key matches %v", err, key.PublicKey.Equal(cert.PublicKey))
	}
}
