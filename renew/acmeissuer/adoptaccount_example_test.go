package acmeissuer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// Keeping the ACME account of the client renewkit replaces: its key (PEM
// here; certbot's private_key.json, a JSON Web Key, works as it is) and
// its URL at the CA become the account directory's, without a request to
// the CA. The Issuers built from the configuration then order with that
// account. Adopting the same account again changes nothing.
func ExampleConfig_AdoptAccount() {
	dir, err := os.MkdirTemp("", "renewkit-account-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // the other client's account key
	if err != nil {
		log.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		log.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	cfg := acmeissuer.Config{
		DirectoryURL: "https://acme-v02.api.letsencrypt.org/directory",
		AccountDir:   filepath.Join(dir, "account"),
	}
	for range 2 {
		adopted, err := cfg.AdoptAccount(context.Background(), keyPEM, "https://acme-v02.api.letsencrypt.org/acme/acct/123456789")
		fmt.Println("adopted:", adopted, err)
	}
	// Output:
	// adopted: true <nil>
	// adopted: false <nil>
}
