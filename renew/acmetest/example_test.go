package acmetest_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// A renewal against the in-process CA, as a program's test would do it:
// the first run obtains and installs the certificate, the second finds
// nothing to do. In a test, acmetest.New(t, …) closes the CA for you and
// t.TempDir() replaces the temporary directory.
func Example() {
	ca, err := acmetest.Start(acmetest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ca.Close()
	dir, err := os.MkdirTemp("", "acmetest-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	// What your program configures for Let's Encrypt, pointed at the test
	// CA: its URL, trust in its TLS certificate, and HTTP-01 on the port
	// where it validates.
	iss, err := acmeissuer.New(ctx, ca.IssuerConfig(filepath.Join(dir, "account")))
	if err != nil {
		log.Fatal(err)
	}
	defer iss.Close()

	r := &renew.Renewer{Root: filepath.Join(dir, "certs"), Issuer: iss, Roots: ca.ChainRoots()}
	www := renew.Certificate{Name: "www", Domains: []string{"www.example.test"}, Profile: "default"}
	for range 2 {
		for _, res := range r.Run(ctx, www) {
			fmt.Println(res.Name, res.Outcome, res.Err)
		}
	}
	fmt.Printf("%+v\n", ca.Stats("www.example.test"))
	// Output:
	// www renewed <nil>
	// www not_due <nil>
	// {Orders:1 Issued:1}
}

// A program that answers HTTP-01 from a web server's document root
// (acmeissuer.HTTP01.Webroot) is tested with the CA serving that root.
func ExampleOptions_webroot() {
	dir, err := os.MkdirTemp("", "acmetest-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	webroot := filepath.Join(dir, "html")
	if err := os.Mkdir(webroot, 0o755); err != nil {
		log.Fatal(err)
	}
	ca, err := acmetest.Start(acmetest.Options{Webroot: webroot})
	if err != nil {
		log.Fatal(err)
	}
	defer ca.Close()

	ctx := context.Background()
	cfg := ca.IssuerConfig(filepath.Join(dir, "account"))
	fmt.Println("webroot:", cfg.HTTP01.Webroot == webroot)
	iss, err := acmeissuer.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer iss.Close()
	r := &renew.Renewer{Root: filepath.Join(dir, "certs"), Issuer: iss, Roots: ca.ChainRoots()}
	res := r.Run(ctx, renew.Certificate{Name: "site", Domains: []string{"site.example.test"}, Profile: "default"})
	fmt.Println(res[0].Name, res[0].Outcome, res[0].Err)
	// Output:
	// webroot: true
	// site renewed <nil>
}

// A wildcard certificate needs DNS-01: CA.DNS01 publishes the TXT records
// where the CA looks them up.
func ExampleCA_DNS01() {
	ca, err := acmetest.Start(acmetest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ca.Close()
	dir, err := os.MkdirTemp("", "acmetest-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	cfg := ca.IssuerConfig(filepath.Join(dir, "account"))
	cfg.HTTP01, cfg.DNS01 = nil, ca.DNS01() // in production: a lego DNS provider
	iss, err := acmeissuer.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer iss.Close()
	r := &renew.Renewer{Root: filepath.Join(dir, "certs"), Issuer: iss, Roots: ca.ChainRoots()}
	res := r.Run(ctx, renew.Certificate{Name: "wild", Domains: []string{"*.example.test", "example.test"}, Profile: "default"})
	fmt.Println(res[0].Name, res[0].Outcome, res[0].Err)
	// Output:
	// wild renewed <nil>
}
