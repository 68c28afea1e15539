package crashtest_test

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/lockfile"
)

// operrBadCases are the operator mistakes of issue 24: each fails (or is
// reported) with its real fix named.
var operrBadCases = []badCase{
	{
		name:   "config with a misspelled key",
		damage: func(t *testing.T, e *badEnv) { e.top = "agree_to = true"; e.writeConfig() },
		code:   2, served: unchanged,
		msgs:  []string{"renewkit.toml:7:", "unknown key agree_to (did you mean agree_tos?)"},
		check: fastFail,
	},
	{
		// A ca_file that did not sign the ACME server's certificate: local
		// and deterministic, so it fails at once, names ca_file, and does
		// not back off; -dry-run finds it too.
		name: "a ca_file that did not sign the CA's certificate",
		damage: func(t *testing.T, e *badEnv) {
			other := httptest.NewTLSServer(http.NotFoundHandler())
			t.Cleanup(other.Close)
			e.server, e.caFile = e.ca.DirectoryURL(), filepath.Join(e.setup.dir, "wrong-ca.pem")
			writeFile(t, e.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate().Raw}))
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"not trusted", "ca_file ", "wrong-ca.pem", "renewkit.toml:", `"fault":"local"`},
		check: func(t *testing.T, e *badEnv, r run) {
			fastFail(t, e, r)
			noOrder(t, e, r)
			d := e.run(nil, "-dry-run")
			if d.code != 1 || !strings.Contains(d.stdout, "server: problem:") || !strings.Contains(d.stdout, "wrong-ca.pem") {
				t.Errorf("-dry-run does not find the wrong ca_file:\n%v", d)
			}
			if d.duration >= 5*time.Second {
				t.Errorf("-dry-run took %v", d.duration)
			}
		},
	},
	{
		// The holder's text was rewritten in place by something else; the
		// holder itself has been stopped for hours.
		name: "a lock holder stopped for hours, its lock file's text unreadable",
		damage: func(t *testing.T, e *badEnv) {
			path := filepath.Join(e.dir, atomicfs.LockFile)
			l, err := lockfile.TryLock(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Unlock() })
			writeFile(t, path, []byte("garbage written over the holder's record\n"))
			old := time.Now().Add(-3 * time.Hour)
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs:  []string{"lock_stuck", "by the lock file's age"},
		check: fastFail,
	},
	{
		// A first manual run against a CA that does not answer: the first
		// retry says so, what to check, and how long the run keeps trying.
		name: "the CA does not answer",
		damage: func(t *testing.T, e *badEnv) {
			e.server, e.caFile = "https://"+closedPort(t)+"/dir", e.ca.CAFile()
			e.account = filepath.Join(e.setup.dir, "account-down") // one account_dir per CA
			e.retry = "retries = 2\ninitial = \"10ms\"\nmax = \"20ms\""
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs:  []string{"the CA cannot be reached", "HTTPS_PROXY", `"attempts_left":2`, "waits_at_most"},
		check: fastFail,
	},
	{
		// The most common HTTP-01 mistake: a webroot the web server does
		// not serve (here nothing answers the CA at all).
		name: "a webroot nobody serves",
		damage: func(t *testing.T, e *badEnv) {
			webroot := filepath.Join(e.setup.dir, "unserved-webroot")
			if err := os.Mkdir(webroot, 0o755); err != nil {
				t.Fatal(err)
			}
			e.challenge = fmt.Sprintf("type = \"http-01\"\nwebroot = %q", webroot)
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"the CA fetched http://www.example.test/.well-known/acme-challenge/", "unserved-webroot/.well-known/acme-challenge/", "serves", "on port 80"},
	},
	{
		// A webroot's owner points the challenge directory elsewhere: the
		// renewer (root here) must not create or truncate files there.
		name: "a webroot's acme-challenge is another user's symbolic link",
		damage: func(t *testing.T, e *badEnv) {
			if os.Geteuid() != 0 {
				t.Skip("making a link owned by another user needs root")
			}
			webroot, elsewhere := filepath.Join(e.setup.dir, "shared-webroot"), filepath.Join(e.setup.dir, "elsewhere")
			for _, d := range []string{filepath.Join(webroot, ".well-known"), elsewhere} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			link := filepath.Join(webroot, ".well-known", "acme-challenge")
			if err := os.Symlink(elsewhere, link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(link, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			e.challenge = fmt.Sprintf("type = \"http-01\"\nwebroot = %q", webroot)
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: unchanged,
		msgs: []string{"symbolic link owned by nobody", "install -d", `"fault":"local"`},
		check: func(t *testing.T, e *badEnv, r run) {
			fastFail(t, e, r)
			noOrder(t, e, r)
			if ents, _ := os.ReadDir(filepath.Join(e.setup.dir, "elsewhere")); len(ents) != 0 {
				t.Errorf("the renewer wrote through the link: %v", ents)
			}
		},
	},
	{
		name: "-status: a foreign file in place of a stable link",
		damage: func(t *testing.T, e *badEnv) {
			link := filepath.Join(e.dir, "fullchain.pem")
			b := readFile(t, link)
			remove(t, link)
			writeFile(t, link, b)
		},
		args: []string{"-status"},
		code: 1, served: unchanged,
		check: func(t *testing.T, e *badEnv, r run) {
			if !strings.Contains(r.stdout, "fullchain.pem is a regular file where the stable link") || !strings.Contains(r.stdout, "www: needs attention:") {
				t.Errorf("-status does not name the foreign file:\n%v", r)
			}
			if r := e.run(nil, "-status", "-report-only"); r.code != 0 {
				t.Errorf("-status -report-only: exit %d, want 0", r.code)
			}
		},
	},
	{
		name: "-status: deploy hooks pending",
		damage: func(t *testing.T, e *badEnv) {
			e.hooks = `[["false"]]` // runs, and fails
			e.writeConfig()
			// The run installs, then its hook fails: pending.
			e.run(nil, "-force", "all")
		},
		args: []string{"-status", "-json"},
		code: 1, served: replaced,
		check: func(t *testing.T, e *badEnv, r run) {
			if !strings.Contains(r.stdout, `"attention"`) || !strings.Contains(r.stdout, "deploy hook runs pending") {
				t.Errorf("-status -json does not list the pending hooks as needing attention:\n%v", r)
			}
		},
	},
	{
		name: "-status: a first issuance that failed",
		damage: func(t *testing.T, e *badEnv) {
			// Its own http-01 listener, where the CA does not look.
			e.certs = append(e.certs, certSpec{name: "new", domains: []string{"new.example.test"},
				extra: "challenge = { type = \"http-01\", listen = \"127.0.0.1:0\" }"})
			e.writeConfig()
			if r := e.run(nil, "-cert", "new"); r.code != 1 {
				t.Fatalf("the first issuance of new: exit %d, want 1:\n%v", r.code, r)
			}
		},
		args: []string{"-status"},
		code: 1, served: unchanged,
		check: func(t *testing.T, e *badEnv, r run) {
			if !strings.Contains(r.stdout, "new: needs attention: its first issuance failed") || strings.Contains(r.stdout, "www: needs attention") {
				t.Errorf("-status: want new (and only new) to need attention:\n%v", r)
			}
			if r := e.run(nil, "-status", "-cert", "www"); r.code != 0 {
				t.Errorf("-status -cert www (fine): exit %d, want 0:\n%v", r.code, r)
			}
		},
	},
	{
		// Issue 24 item 9: secrets the redaction patterns do not know
		// (a cookie, curl -u, --password VALUE) never reach state.json.
		name: "a failing hook prints a cookie, curl -u and --password",
		damage: func(t *testing.T, e *badEnv) {
			// The secrets are in the output only (the argv is the hook's
			// name in the journal, and comes from the configuration).
			e.hooks = `[["/bin/sh", "-c", "v=v4l; echo \"Cookie: sessionid=c00kie-$v\"; echo \"curl -u admin:adm1n-$v\"; echo \"--password s3cret-$v\"; exit 1"]]`
			e.writeConfig()
		},
		args: []string{"-force", "all"},
		code: 1, served: replaced,
		check: func(t *testing.T, e *badEnv, r run) {
			b := readFile(t, filepath.Join(e.dir, "state.json"))
			for _, secret := range []string{"c00kie-v4l", "adm1n-v4l", "s3cret-v4l"} {
				if strings.Contains(string(b), secret) {
					t.Errorf("state.json holds %q:\n%s", secret, b)
				}
			}
			if r := e.run(nil, "-status"); strings.Contains(r.stdout, "c00kie-v4l") || r.code != 1 {
				t.Errorf("-status: exit %d (want 1: hooks pending) or shows the cookie:\n%v", r.code, r)
			}
		},
	},
}

// fastFail fails the test when the run took 5 s or more: a mistake of this
// machine is reported at once, not after retries.
func fastFail(t *testing.T, _ *badEnv, r run) {
	t.Helper()
	if r.duration >= 5*time.Second {
		t.Errorf("took %v to fail, want under 5 s", r.duration)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
