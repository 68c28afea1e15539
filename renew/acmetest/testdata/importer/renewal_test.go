// This file is a test an importing module can copy as it is: it renews a
// certificate against renewkit's in-process test CA (package acmetest) and
// checks what a program that embeds renewkit cares about. The test
// TestExternalModule in renewkit's renew/acmetest runs it from a new module
// outside renewkit, exactly as a copy would run.
package importer_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
	"github.com/renewkit/renewkit/renew/acmetest"
)

func TestRenewal(t *testing.T) {
	ca := acmetest.New(t, acmetest.Options{}) // closed when the test ends

	// Your program's configuration, pointed at the test CA.
	iss, err := acmeissuer.New(t.Context(), ca.IssuerConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iss.Close() })

	var deployed []int // generations the deploy hook saw
	root := t.TempDir()
	r := &renew.Renewer{Root: root, Issuer: iss, Roots: ca.ChainRoots()}
	www := renew.Certificate{
		Name:    "www",
		Domains: []string{"www.example.test", "example.test"},
		Profile: "default",
		Hooks: []hooks.Hook{hooks.Func("reload", func(_ context.Context, ev hooks.Event) error {
			deployed = append(deployed, ev.Generation)
			return nil
		})},
	}

	// The first run obtains the certificate.
	if res := r.Run(t.Context(), www)[0]; res.Outcome != renew.Renewed {
		t.Fatalf("first run: outcome %s (%v), want %s", res.Outcome, res.Err, renew.Renewed)
	}

	// The served certificate chains to the CA's roots and covers the names.
	leaf := readLeaf(t, filepath.Join(root, "www", "cert.pem"))
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.test", Roots: ca.ChainRoots(), Intermediates: intermediates(t, filepath.Join(root, "www", "chain.pem"))}); err != nil {
		t.Fatalf("served certificate: %v", err)
	}

	// The CA asks for early renewal (ARI, RFC 9773): the next run renews
	// and deploys generation 2, and the run after that has nothing to do.
	// (A Renewer fetches the CA's window once per ARIInterval, 6 h by
	// default: set it before the run that should see it, as here.)
	if err := ca.SetRenewalWindow(leaf, time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []renew.Outcome{renew.Renewed, renew.NotDue} {
		if res := r.Run(t.Context(), www)[0]; res.Outcome != want {
			t.Fatalf("after the CA asked for renewal: outcome %s (%v), want %s", res.Outcome, res.Err, want)
		}
	}
	if !slices.Equal(deployed, []int{1, 2}) {
		t.Errorf("deploy hook saw generations %v, want [1 2]", deployed)
	}
	if st := ca.Stats(www.Domains...); st.Issued != 2 {
		t.Errorf("the CA issued %d certificates, want 2", st.Issued)
	}
}

func readLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func intermediates(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s: no certificate", path)
	}
	return p
}
