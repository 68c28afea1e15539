package renew_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// A one-shot run, as a systemd timer would do it: the first run obtains
// and installs the certificate and runs its deploy hook; the second finds
// nothing to do. The CA here is the in-process test CA of package acmetest,
// which your own tests can use the same way; in production DirectoryURL is
// your CA's (e.g. Let's Encrypt's), CARoots is nil (the system roots) and
// the HTTP-01 listener is on port 80, or a webroot is used.
func ExampleRenewer_Run() {
	ca, err := acmetest.Start(acmetest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ca.Close()
	root, err := os.MkdirTemp("", "renewkit-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)

	issuer, err := acmeissuer.New(context.Background(), acmeissuer.Config{
		DirectoryURL: ca.DirectoryURL(),
		AgreeTOS:     true,
		AccountDir:   filepath.Join(root, "account"),
		CARoots:      ca.TLSRoots(), // trust the test CA's HTTPS endpoint
		HTTP01:       &acmeissuer.HTTP01{Addr: ca.HTTP01Addr()},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer issuer.Close()

	r := &renew.Renewer{Root: filepath.Join(root, "certs"), Issuer: issuer}
	www := renew.Certificate{
		Name:    "www",
		Domains: []string{"example.test", "www.example.test"},
		Profile: "default",
		Hooks: []hooks.Hook{hooks.Func("announce", func(_ context.Context, ev hooks.Event) error {
			fmt.Printf("deploy hook: %s generation %d\n", ev.Lineage, ev.Generation)
			return nil
		})},
	}
	for range 2 {
		for _, res := range r.Run(context.Background(), www) {
			fmt.Println(res.Name, res.Outcome)
		}
	}
	// Output:
	// deploy hook: www generation 1
	// www renewed
	// www not_due
}

// Serving the current generation to crypto/tls, picking up renewals
// without a restart. In a process that also runs the Renewer (Serve), add
// src.Hook() to the Certificate's hooks so the new certificate is loaded
// the moment it is current.
func ExampleNewCertSource() {
	src, err := renew.NewCertSource(5*time.Second, "/var/lib/renewkit/www")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Addr:      ":443",
		TLSConfig: &tls.Config{GetCertificate: src.GetCertificate},
	}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}

// The long-running mode: renew whenever something is due until ctx ends.
func ExampleRenewer_Serve() {
	var issuer renew.Issuer // e.g. an *acmeissuer.Issuer
	r := &renew.Renewer{Root: "/var/lib/renewkit", Issuer: issuer}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := r.Serve(ctx, renew.Certificate{Name: "www", Domains: []string{"www.example.com"}})
	log.Println("renewal loop ended:", err)
}
