package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/internal/realclients"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// importRun is one -import of a tool's directory into a new configuration
// and root, with the checks every tool shares: the dry run writes nothing;
// -yes imports want (serving the tool's certificates), and again skips
// them; -status shows them
// not due; no order reached the CA; a forced renewal of each of them (with
// web serving the webroot of webName; after edit changed the configuration
// written, when set) orders with the tool's account and names each
// imported certificate in ARI's replaces.
func importRun(t *testing.T, ca *testacme.Server, tool, from, accountURL string, extra []string, want map[string]string, webName, web string, edit func(string) string) {
	t.Helper()
	d := t.TempDir()
	root, config := filepath.Join(d, "root"), filepath.Join(d, "config.toml")
	args := append([]string{"-import", tool, "-from", from, "-config", config, "-root", root, "-ca-file", ca.CAFile()}, extra...)
	orders := ca.Stats().Orders

	code, out, errOut := runCLI(t, context.Background(), args...)
	if code != exitOK || !strings.Contains(out, "dry run") {
		t.Fatalf("-import dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(config); !os.IsNotExist(err) {
		t.Fatalf("the dry run wrote %s (%v)", config, err)
	}
	code, out, errOut = runCLI(t, context.Background(), append(args, "-yes")...)
	if code != exitOK {
		t.Fatalf("-import -yes: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("-import %s -yes:\n%s", tool, out)
	for name, certFile := range want {
		snapCert, err := os.ReadFile(filepath.Join(root, name, "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		toolCert, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		a, b := leafOf(t, snapCert), leafOf(t, toolCert)
		if !a.Equal(b) {
			t.Errorf("%s serves serial %x, %s has %x", name, a.SerialNumber, tool, b.SerialNumber)
		}
	}

	// Again, into the configuration it wrote: everything is skipped.
	code, out, errOut = runCLI(t, context.Background(), append(args, "-yes")...)
	if code != exitOK || strings.Count(out, "  skip ") != len(want) {
		t.Fatalf("-import -yes again: exit %d, want every certificate skipped\n%s\n%s", code, out, errOut)
	}

	code, out, errOut = runCLI(t, context.Background(), "-config", config, "-status", "-json")
	if code != exitOK {
		t.Fatalf("-status: exit %d\n%s\n%s", code, out, errOut)
	}
	var st struct {
		Certificates []struct {
			Name      string
			Installed bool
			Due       bool
			Serial    string
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("-status -json: %v\n%s", err, out)
	}
	if len(st.Certificates) != len(want) {
		t.Fatalf("-status lists %d certificates, want %d:\n%s", len(st.Certificates), len(want), out)
	}
	for _, c := range st.Certificates {
		if !c.Installed || c.Due {
			t.Errorf("-status: %s installed %v, due %v; want installed, not due", c.Name, c.Installed, c.Due)
		}
	}
	if n := ca.Stats().Orders; n != orders {
		t.Fatalf("the import and -status placed %d orders", n-orders)
	}

	if edit != nil {
		b, err := os.ReadFile(config)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(config, []byte(edit(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := ca.Stats()
	// One at a time: a webroot's web server and a standalone listener
	// share the CA's one HTTP-01 port.
	for name := range want {
		if name == webName {
			stop := realclients.ServeWebroot(t, ca, web)
			code, out, errOut = runCLI(t, context.Background(), "-config", config, "-force", name, "-cert", name)
			stop()
		} else {
			code, out, errOut = runCLI(t, context.Background(), "-config", config, "-force", name, "-cert", name)
		}
		if code != exitOK {
			t.Fatalf("forced renewal of %s: exit %d\n%s\n%s", name, code, out, errOut)
		}
	}
	if st := ca.Stats(); st.Orders-before.Orders != len(want) || st.Replacing-before.Replacing != len(want) {
		t.Errorf("forced renewal: %d orders, %d replacing; want %d orders each naming the imported certificate", st.Orders-before.Orders, st.Replacing-before.Replacing, len(want))
	}
	acct, err := os.ReadFile(filepath.Join(acmeissuer.DefaultAccountDir(root, ca.DirectoryURL()), "account.json"))
	if err != nil || !strings.Contains(string(acct), `"`+accountURL+`"`) {
		t.Errorf("the account after the renewal %s (%v) is not %s's %s", acct, err, tool, accountURL)
	}
}

func leafOf(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// accountURLIn returns the one account URL in the JSON files matching
// pattern ("uri" of certbot's regr.json, registration.uri of lego's
// account.json).
func accountURLIn(t *testing.T, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) != 1 {
		t.Fatalf("%s: %v (%v)", pattern, m, err)
	}
	b, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		URI          string `json:"uri"`
		Registration struct {
			URI string `json:"uri"`
		} `json:"registration"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.URI != "" {
		return v.URI
	}
	return v.Registration.URI
}

// certbot's webroot and standalone certificates and lego's, imported with
// -import: see importRun.
func TestImportCLI(t *testing.T) {
	ca := startCA(t)
	t.Run("certbot", func(t *testing.T) {
		realclients.Need(t, "certbot")
		cb := realclients.NewCertbot(t)
		web := t.TempDir()
		stop := realclients.ServeWebroot(t, ca, web)
		cb.Certonly(t, ca, "--cert-name", "web", "-d", "web.example.org", "--webroot", "-w", web, "--deploy-hook", "true")
		stop()
		cb.Certonly(t, ca, append([]string{"--cert-name", "alone", "-d", "alone.example.org"}, realclients.Standalone(ca)...)...)
		live := filepath.Join(cb.Config, "live")
		importRun(t, ca, "certbot", cb.Config, accountURLIn(t, filepath.Join(cb.Config, "accounts", "*", "*", "*", "regr.json")), nil,
			map[string]string{"web": filepath.Join(live, "web", "cert.pem"), "alone": filepath.Join(live, "alone", "cert.pem")}, "web", web, nil)
	})
	t.Run("lego", func(t *testing.T) {
		realclients.Need(t, "lego")
		from := filepath.Join(t.TempDir(), ".lego")
		realclients.Lego(t, ca, from, "--domains", "lego.example.org", "run")
		// lego's own HTTP-01 listener was on the CA's port; lego does not
		// record it, and the imported configuration says :80 (as the plan
		// warns), which the test changes as a user would.
		importRun(t, ca, "lego", from, accountURLIn(t, filepath.Join(from, "accounts", "*", "*", "account.json")),
			[]string{"-server", ca.DirectoryURL()},
			map[string]string{"lego.example.org": filepath.Join(from, "certificates", "lego.example.org.crt")}, "", "",
			func(cfg string) string {
				return strings.Replace(cfg, `listen = ":80"`, `listen = "`+ca.HTTP01Addr()+`"`, 1)
			})
	})
}
