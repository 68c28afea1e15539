package renew_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/renewkit/renewkit/renew"
)

// Taking over a certificate another client issued: Adopt installs it as
// the lineage's first generation without contacting the CA, and Run then
// renews it when it is due. In a real switch the three PEM inputs are the
// other client's files (certbot's live/NAME/cert.pem, chain.pem and
// privkey.pem); here a self-signed certificate stands in for them.
func ExampleRenewer_Adopt() {
	root, err := os.MkdirTemp("", "renewkit-adopt-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	certPEM, keyPEM := selfSigned("www.example.test")

	r := &renew.Renewer{Root: filepath.Join(root, "certs")}
	www := renew.Certificate{Name: "www", Domains: []string{"www.example.test"}}
	for range 2 { // adopting again is harmless
		res := r.Adopt(context.Background(), www, renew.Existing{Cert: certPEM, Key: keyPEM})
		fmt.Println(res.Outcome, "generation", res.Generation, "issued", res.Issued)
	}
	st := r.Status(www)[0]
	fmt.Println("due:", st.Due)
	// Output:
	// adopted generation 1 issued 0
	// adopted generation 1 issued 0
	// due: false
}

// selfSigned returns a 90-day self-signed P-256 certificate for name and
// its key, in PEM.
func selfSigned(name string) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		log.Fatal(err)
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		log.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})
}
