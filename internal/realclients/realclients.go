// Package realclients runs the real certbot and lego command-line
// programs against the in-process test CA (internal/testacme), for the
// tests of renew-certificates -import (the CLI's, its internal/migrate's and
// the crash suite's): what they write is what users have,
// not a fixture written by hand. Each program gets its own directories
// under the test's temporary directory and talks to the CA over loopback
// only.
//
// A test needing a program skips without it, unless CI=true: .ci/run
// installs Debian's certbot and lego, and a test that silently skips there
// proves nothing.
package realclients

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/testacme"
)

// Need returns the path of the named program, skipping the test when it
// is not installed (failing it under CI=true).
func Need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (.ci/run installs Debian's package): %v", name, err)
		}
		t.Skipf("%s is not installed: %v", name, err)
	}
	return p
}

// run runs a program with env added, failing the test with its output
// when it fails.
func run(t testing.TB, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Certbot is one certbot installation: its --config-dir (what
// renew-certificates -import certbot reads), --work-dir and --logs-dir.
type Certbot struct{ Config, work, logs string }

// NewCertbot returns a certbot installation in a new temporary directory.
func NewCertbot(t testing.TB) *Certbot {
	d := t.TempDir()
	return &Certbot{Config: filepath.Join(d, "letsencrypt"), work: filepath.Join(d, "work"), logs: filepath.Join(d, "logs")}
}

// Certonly runs `certbot certonly` against ca (registering an account
// without e-mail the first time) with the extra flags: the names, the
// authenticator, hooks.
func (c *Certbot) Certonly(t testing.TB, ca *testacme.Server, extra ...string) {
	t.Helper()
	bin := Need(t, "certbot")
	args := append([]string{"certonly", "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
		"--server", ca.DirectoryURL(), "--config-dir", c.Config, "--work-dir", c.work, "--logs-dir", c.logs}, extra...)
	run(t, []string{"REQUESTS_CA_BUNDLE=" + ca.CAFile()}, bin, args...)
}

// Standalone returns certbot's flags for its standalone HTTP-01 listener
// on the port ca validates.
func Standalone(ca *testacme.Server) []string {
	_, port, _ := strings.Cut(ca.HTTP01Addr(), ":")
	return []string{"--standalone", "--http-01-port", port, "--http-01-address", "127.0.0.1"}
}

// ServeWebroot serves dir's files on ca's HTTP-01 address (a web server
// whose document root certbot's webroot plugin writes to) until the
// returned function is called.
func ServeWebroot(t testing.TB, ca *testacme.Server, dir string) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", ca.HTTP01Addr())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	return func() { srv.Close(); <-done }
}

// Lego runs the lego CLI against ca with --path dir, the account
// lego@example.org and its HTTP-01 listener on the port ca validates; extra
// are the names and the command ("run").
func Lego(t testing.TB, ca *testacme.Server, dir string, extra ...string) {
	t.Helper()
	bin := Need(t, "lego")
	args := append([]string{"--server", ca.DirectoryURL(), "--accept-tos", "--email", LegoEmail, "--path", dir,
		"--http", "--http.port", ca.HTTP01Addr()}, extra...)
	run(t, []string{"LEGO_CA_CERTIFICATES=" + ca.CAFile()}, bin, args...)
}

// LegoEmail is the account Lego registers.
const LegoEmail = "lego@example.org"
