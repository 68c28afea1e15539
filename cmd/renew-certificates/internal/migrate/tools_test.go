package migrate

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

// needTool returns the path of the named program, skipping the test when
// it is not installed, unless CI=true: CI installs certbot and lego, and a
// test that silently skips there proves nothing.
func needTool(t *testing.T, name string) string {
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

// runTool runs a real ACME client with env added, failing the test with
// its output when it fails.
func runTool(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// certbotDirs are the --config-dir, --work-dir and --logs-dir of one
// certbot installation in a test.
type certbotDirs struct{ config, work, logs string }

func newCertbotDirs(t *testing.T) certbotDirs {
	d := t.TempDir()
	return certbotDirs{config: filepath.Join(d, "letsencrypt"), work: filepath.Join(d, "work"), logs: filepath.Join(d, "logs")}
}

// certbot runs `certbot certonly` against ca with the given extra flags.
func (d certbotDirs) certonly(t *testing.T, ca *testacme.Server, extra ...string) {
	t.Helper()
	bin := needTool(t, "certbot")
	args := append([]string{"certonly", "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
		"--server", ca.DirectoryURL(), "--config-dir", d.config, "--work-dir", d.work, "--logs-dir", d.logs,
		"--no-random-sleep-on-renew"}, extra...)
	runTool(t, []string{"REQUESTS_CA_BUNDLE=" + ca.CAFile()}, bin, args...)
}

// serveWebroot serves dir's files on the CA's HTTP-01 address until the
// returned function is called.
func serveWebroot(t *testing.T, ca *testacme.Server, dir string) (stop func()) {
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

// lego runs the lego CLI against ca with --path dir.
func legoRun(t *testing.T, ca *testacme.Server, dir string, extra ...string) {
	t.Helper()
	bin := needTool(t, "lego")
	args := append([]string{"--server", ca.DirectoryURL(), "--accept-tos", "--email", "lego@example.org", "--path", dir,
		"--http", "--http.port", ca.HTTP01Addr()}, extra...)
	runTool(t, []string{"LEGO_CA_CERTIFICATES=" + ca.CAFile()}, bin, args...)
}
