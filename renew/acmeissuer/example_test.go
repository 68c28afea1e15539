package acmeissuer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// A configuration for Let's Encrypt's staging CA, answering HTTP-01 from the
// webroot of a web server already running on port 80.
func ExampleNew() {
	iss, err := acmeissuer.New(context.Background(), acmeissuer.Config{
		DirectoryURL: "https://acme-staging-v02.api.letsencrypt.org/directory",
		Email:        "admin@example.org",
		AgreeTOS:     true, // after reading the CA's terms
		AccountDir:   "/var/lib/renewkit/accounts/letsencrypt-staging",
		HTTP01:       &acmeissuer.HTTP01{Webroot: "/var/www/html"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer iss.Close()
	// Hand iss to a renew.Renewer, or call Issue, Resume and RenewalInfo.
}

// Issue a certificate against the in-process test CA (package acmetest),
// journaling the order before it is finalized, then resume that order as a
// later process would.
func ExampleIssuer_Issue() {
	ca, err := acmetest.Start(acmetest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ca.Close()

	dir, err := os.MkdirTemp("", "acmeissuer-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	iss, err := acmeissuer.New(ctx, acmeissuer.Config{
		DirectoryURL: ca.DirectoryURL(),
		AgreeTOS:     true,
		AccountDir:   filepath.Join(dir, "account"),
		CARoots:      ca.TLSRoots(),                             // trust the test CA's HTTPS endpoint
		HTTP01:       &acmeissuer.HTTP01{Addr: ca.HTTP01Addr()}, // where it validates
	})
	if err != nil {
		log.Fatal(err)
	}
	defer iss.Close()

	key, err := renew.EC256.Generate() // the caller owns the key
	if err != nil {
		log.Fatal(err)
	}
	journalPath := filepath.Join(dir, "inflight.json")
	journal := func(ctx context.Context, rec renew.InFlight) error {
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		// Durable before finalize: an atomic replace beside the target,
		// then an fsync of the directory, which renameio leaves out.
		if err := renameio.WriteFile(journalPath, data, 0o600, renameio.WithTempDir(dir)); err != nil {
			return err
		}
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	}
	got, err := iss.Issue(ctx, renew.IssueRequest{
		Name:    "www",
		Domains: []string{"www.example.org", "example.org"},
		Key:     key,
		Profile: "default",
	}, journal)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("issued for", got.Leaf.DNSNames)

	// Had the process died after finalize, the next run would do this:
	data, err := os.ReadFile(journalPath)
	if err != nil {
		log.Fatal(err)
	}
	var rec renew.InFlight
	if err := json.Unmarshal(data, &rec); err != nil {
		log.Fatal(err)
	}
	again, err := iss.Resume(ctx, rec)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("resumed the same certificate:", again.Leaf.SerialNumber.Cmp(got.Leaf.SerialNumber) == 0)
	// Output:
	// issued for [www.example.org example.org]
	// resumed the same certificate: true
}
