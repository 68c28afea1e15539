package migrate

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/renewkit/renewkit/internal/pubkey"
	"github.com/renewkit/renewkit/internal/realclients"
	servedfiles "github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// certbotFixture has certbot issue two certificates from ca: "web" by
// webroot for two names with a deploy hook, "alone" by its standalone
// listener with an RSA key. It returns certbot's configuration directory
// and the file the deploy hook appends to.
func certbotFixture(t *testing.T, ca *testacme.Server) (dir, hookLog string) {
	t.Helper()
	cb := realclients.NewCertbot(t)
	web := t.TempDir()
	hookLog = filepath.Join(t.TempDir(), "deployed")
	stop := realclients.ServeWebroot(t, ca, web)
	cb.Certonly(t, ca, "--cert-name", "web", "-d", "web.example.org", "-d", "www.example.org", "--webroot", "-w", web,
		"--deploy-hook", "echo $RENEWED_LINEAGE >> "+hookLog)
	stop()
	cb.Certonly(t, ca, append([]string{"--cert-name", "alone", "-d", "alone.example.org", "--key-type", "rsa"}, realclients.Standalone(ca)...)...)
	return cb.Config, hookLog
}

// importEnv is a storage root and configuration path for an import from a
// test CA's tool directory.
type importEnv struct {
	ca           *testacme.Server
	root, config string
}

func newImportEnv(t *testing.T, ca *testacme.Server) *importEnv {
	d := t.TempDir()
	return &importEnv{ca: ca, root: filepath.Join(d, "root"), config: filepath.Join(d, "etc", "config.toml")}
}

func (e *importEnv) options(tool, from string, yes bool) Options {
	return Options{Tool: tool, From: from, Config: e.config, Root: e.root, CAFile: e.ca.CAFile(), Yes: yes, Roots: e.ca.RootPool(),
		systemdDirs: []string{}, cronFiles: []string{}, serverDirs: []string{}}
}

func (e *importEnv) run(t *testing.T, o Options) (*Report, string) {
	t.Helper()
	var out bytes.Buffer
	rep, err := Import(t.Context(), o, &out)
	if err != nil {
		t.Fatalf("Import: %v\n%s", err, out.String())
	}
	t.Logf("Import (yes=%v):\n%s", o.Yes, out.String())
	return rep, out.String()
}

// checkServed checks that lineage name under root serves the certificate
// and key of the tool's files certFile and keyFile.
func checkServed(t *testing.T, root, name, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	snap, err := servedfiles.Check(filepath.Join(root, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	want, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(want)
	if blk == nil || !bytes.Equal(blk.Bytes, snap.Leaf.Raw) {
		t.Fatalf("%s serves serial %x, not the certificate of %s", name, snap.Leaf.SerialNumber, certFile)
	}
	servedKey, err := os.ReadFile(filepath.Join(root, name, "privkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	toolKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	a, b := mustParseKey(t, servedKey), mustParseKey(t, toolKey)
	if !pubkey.Equal(a.Public(), b.Public()) {
		t.Fatalf("%s serves another key than %s", name, keyFile)
	}
	return snap.Leaf
}

func mustParseKey(t *testing.T, b []byte) interface{ Public() crypto.PublicKey } {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM key")
	}
	k, err := parsePrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestImportCertbot: certbot issues two certificates (webroot with a
// deploy hook, standalone), the import's dry run writes nothing, the
// import serves the same serials and keys as certbot without an order,
// runs the deploy hook, leaves certbot's directory as it was, and is
// harmless when run again; a forced renewal afterwards orders with
// certbot's account and names the imported certificate in ARI's replaces.
func TestImportCertbot(t *testing.T) {
	realclients.Need(t, "certbot")
	ca := testacme.New(t, testacme.Options{Profiles: map[string]time.Duration{"shortlived": 0}})
	from, hookLog := certbotFixture(t, ca)
	before := realclients.Snapshot(t, from)
	orders := ca.Stats().Orders
	e := newImportEnv(t, ca)

	// Dry run: a plan, nothing written.
	rep, out := e.run(t, e.options("certbot", from, false))
	if got := strings.Join(rep.Imported, ","); got != "alone,web" {
		t.Fatalf("dry run would import %q, want alone,web", got)
	}
	for _, want := range []string{"dry run", "import  web: web.example.org www.example.org", "http-01 webroot", "import  alone: alone.example.org", "rsa2048", "listener on 127.0.0.1:", "echo $RENEWED_LINEAGE"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	if _, err := os.Stat(e.root); !os.IsNotExist(err) {
		t.Errorf("the dry run created the root (%v)", err)
	}
	if _, err := os.Stat(e.config); !os.IsNotExist(err) {
		t.Errorf("the dry run wrote the configuration (%v)", err)
	}

	// The import.
	rep, _ = e.run(t, e.options("certbot", from, true))
	if got := strings.Join(rep.Imported, ","); got != "alone,web" || len(rep.Failed) != 0 {
		t.Fatalf("imported %q, failed %q", got, rep.Failed)
	}
	leaves := map[string]*x509.Certificate{}
	for _, name := range []string{"web", "alone"} {
		leaves[name] = checkServed(t, e.root, name, filepath.Join(from, "live", name, "cert.pem"), filepath.Join(from, "live", name, "privkey.pem"))
	}
	if n := ca.Stats().Orders; n != orders {
		t.Errorf("the import placed %d orders", n-orders)
	}
	if got, _ := os.ReadFile(hookLog); strings.Count(string(got), filepath.Join(e.root, "web")) != 1 {
		t.Errorf("the deploy hook's log %q: want one run with RENEWED_LINEAGE %s", got, filepath.Join(e.root, "web"))
	}
	if after := realclients.Snapshot(t, from); after != before {
		t.Errorf("certbot's directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	var cfg struct {
		Server, Root, AccountDir string `toml:"account_dir"`
		Certificate              []struct {
			Name      string
			Domains   []string
			KeyType   string `toml:"key_type"`
			Hooks     [][]string
			Challenge struct{ Type, Webroot, Listen string }
		}
	}
	if _, err := toml.DecodeFile(e.config, &cfg); err != nil {
		t.Fatalf("the configuration written does not parse: %v", err)
	}
	if len(cfg.Certificate) != 2 {
		t.Fatalf("configuration has %d certificates, want 2", len(cfg.Certificate))
	}

	// Again: skipped, nothing changes.
	rep, _ = e.run(t, e.options("certbot", from, true))
	if len(rep.Imported) != 0 || strings.Join(rep.Skipped, ",") != "alone,web" {
		t.Fatalf("second import: imported %q, skipped %q; want none, alone,web", rep.Imported, rep.Skipped)
	}

	// A forced renewal uses certbot's account and replaces the imported
	// certificate.
	acct := readCertbotAccount(reader{root: from, euid: os.Geteuid()}, ca.DirectoryURL(), onlyAccount(t, from))
	if acct.Err != nil {
		t.Fatal(acct.Err)
	}
	ac := acmeissuer.Config{DirectoryURL: ca.DirectoryURL(), AccountDir: acmeissuer.DefaultAccountDir(e.root, ca.DirectoryURL()),
		CARoots: ca.CertPool(), HTTP01: &acmeissuer.HTTP01{Addr: ca.HTTP01Addr()}}
	iss, err := acmeissuer.New(t.Context(), ac)
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	r := &renew.Renewer{Root: e.root, Issuer: iss, Roots: ca.RootPool()}
	c := renew.Certificate{Name: "alone", Domains: []string{"alone.example.org"}, KeyType: renew.RSA2048, Force: true}
	res := r.Run(context.Background(), c)[0]
	if res.Outcome != renew.Renewed {
		t.Fatalf("forced renewal: %+v", res)
	}
	if st := ca.Stats("alone.example.org"); st.Replacing != 1 {
		t.Errorf("the forced renewal's order did not name the imported certificate in replaces (%+v)", st)
	}
	rec, err := os.ReadFile(filepath.Join(ac.AccountDir, "account.json"))
	if err != nil || !strings.Contains(string(rec), acct.URL) {
		t.Errorf("account.json %s (%v) does not name certbot's account %s", rec, err, acct.URL)
	}
	_ = leaves
}

// onlyAccount returns the ID of the one account certbot registered.
func onlyAccount(t *testing.T, from string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(from, "accounts", "*", "*", "*", "regr.json"))
	if err != nil || len(m) != 1 {
		t.Fatalf("certbot accounts: %v (%v)", m, err)
	}
	return filepath.Base(filepath.Dir(m[0]))
}

// copyDir copies a tool's directory with its links, modes and owners.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), filepath.Base(from))
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	return to
}

// Bad input in one certbot lineage is reported for that lineage, nothing
// is written for it, and the other lineage is imported.
func TestImportCertbotBadInput(t *testing.T) {
	realclients.Need(t, "certbot")
	ca := testacme.New(t, testacme.Options{Profiles: map[string]time.Duration{"shortlived": 0}})
	pristine, _ := certbotFixture(t, ca)
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"truncated live file", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "archive", "web", "cert1.pem")
			b, _ := os.ReadFile(p)
			if err := os.WriteFile(p, b[:len(b)/2], 0o644); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"key of another certificate", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "archive", "alone", "privkey1.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "archive", "web", "privkey1.pem"), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "does not match"},
		{"missing account", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "renewal", "web.conf")
			b, _ := os.ReadFile(p)
			lines := strings.Split(string(b), "\n")
			for i, l := range lines {
				if strings.HasPrefix(l, "account = ") {
					lines[i] = "account = 0123456789abcdef0123456789abcdef"
				}
			}
			if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "account 0123456789abcdef0123456789abcdef: missing"},
		{"directory owned by another user", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("changing a directory's owner needs root")
			}
			if err := os.Chown(filepath.Join(dir, "archive", "web"), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 65534"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := copyDir(t, pristine)
			tt.damage(t, from)
			before := realclients.Snapshot(t, from)
			e := newImportEnv(t, ca)
			rep, out := e.run(t, e.options("certbot", from, true))
			if strings.Join(rep.Failed, ",") != "web" || strings.Join(rep.Imported, ",") != "alone" {
				t.Fatalf("failed %q, imported %q; want web, alone", rep.Failed, rep.Imported)
			}
			if !strings.Contains(out, "cannot  web: ") || !strings.Contains(out, tt.want) {
				t.Errorf("the plan does not say why web cannot be imported (%q)", tt.want)
			}
			if _, err := os.Stat(filepath.Join(e.root, "web")); !os.IsNotExist(err) {
				t.Errorf("a lineage directory was written for web (%v)", err)
			}
			cfg, err := os.ReadFile(e.config)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(cfg), `name = "web"`) || !strings.Contains(string(cfg), `name = "alone"`) {
				t.Errorf("the configuration should name alone and not web:\n%s", cfg)
			}
			if after := realclients.Snapshot(t, from); after != before {
				t.Error("certbot's directory changed")
			}
		})
	}
}

// lego's directory: the certificate is served with lego's serial and key,
// no order is placed, and a forced renewal uses lego's account with ARI's
// replaces.
func TestImportLego(t *testing.T) {
	realclients.Need(t, "lego")
	ca := testacme.New(t, testacme.Options{Profiles: map[string]time.Duration{"shortlived": 0}})
	from := filepath.Join(t.TempDir(), ".lego")
	realclients.Lego(t, ca, from, "--domains", "lego.example.org", "--domains", "www.lego.example.org", "run")
	before := realclients.Snapshot(t, from)
	orders := ca.Stats().Orders
	e := newImportEnv(t, ca)

	o := e.options("lego", from, true)
	o.Server = ca.DirectoryURL()
	rep, out := e.run(t, o)
	if strings.Join(rep.Imported, ",") != "lego.example.org" {
		t.Fatalf("imported %q, want lego.example.org", rep.Imported)
	}
	if !strings.Contains(out, "lego does not record how it validated") {
		t.Error("the plan does not say that lego's challenge is a guess")
	}
	crt := filepath.Join(from, "certificates", "lego.example.org")
	checkServed(t, e.root, "lego.example.org", crt+".crt", crt+".key")
	if n := ca.Stats().Orders; n != orders {
		t.Errorf("the import placed %d orders", n-orders)
	}
	if after := realclients.Snapshot(t, from); after != before {
		t.Error("lego's directory changed")
	}

	ac := acmeissuer.Config{DirectoryURL: ca.DirectoryURL(), AccountDir: acmeissuer.DefaultAccountDir(e.root, ca.DirectoryURL()),
		CARoots: ca.CertPool(), HTTP01: &acmeissuer.HTTP01{Addr: ca.HTTP01Addr()}}
	iss, err := acmeissuer.New(t.Context(), ac)
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	r := &renew.Renewer{Root: e.root, Issuer: iss, Roots: ca.RootPool()}
	c := renew.Certificate{Name: "lego.example.org", Domains: []string{"lego.example.org", "www.lego.example.org"}, Force: true}
	if res := r.Run(context.Background(), c)[0]; res.Outcome != renew.Renewed {
		t.Fatalf("forced renewal: %+v", res)
	}
	if st := ca.Stats("lego.example.org", "www.lego.example.org"); st.Replacing != 1 {
		t.Errorf("the forced renewal did not name the imported certificate in replaces (%+v)", st)
	}
	legoAcct, err := os.ReadFile(filepath.Join(from, "accounts", strings.ReplaceAll(strings.TrimPrefix(strings.Split(ca.DirectoryURL(), "/")[2], ""), ":", "_"), realclients.LegoEmail, "account.json"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := os.ReadFile(filepath.Join(ac.AccountDir, "account.json"))
	if err != nil {
		t.Fatal(err)
	}
	var la struct{ Registration struct{ URI string } }
	if err := json.Unmarshal(legoAcct, &la); err != nil || la.Registration.URI == "" || !strings.Contains(string(rec), la.Registration.URI) {
		t.Errorf("account.json %s does not name lego's account %q (%v)", rec, la.Registration.URI, err)
	}
}
