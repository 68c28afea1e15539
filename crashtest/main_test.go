package crashtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
)

// binaries are the programs TestMain builds once per test binary.
type binaries struct {
	// cli is cmd/renew-certificates built with -tags
	// renewkit_crashpoints.
	cli string
	// hook is testdata/hook, the deploy hook.
	hook string
}

// bin is set by TestMain before any test runs and never changed after.
var bin binaries

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "renewkit-crashtest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 1
	}
	bin = binaries{cli: filepath.Join(dir, "renew-certificates"), hook: filepath.Join(dir, "hook")}
	if testing.Verbose() {
		fmt.Printf("crashtest: built the CLI and the hook in %v\n", time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

// build compiles the CLI with crash points and the hook helper into dir
// (the go command on PATH: go test puts GOROOT/bin first). The CLI is a
// module of its own (cmd/renew-certificates, which replaces the library with
// this checkout), so it is built from its directory: that works with the
// repository's go.work and without it (GOWORK=off).
func build(dir string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build the CLI: %w", err)
	}
	for _, b := range []struct{ dir, pkg string }{
		{"../cmd/renew-certificates", "."},
		{"..", "./crashtest/testdata/hook"}, // the library module's root
	} {
		cmd := exec.Command(goCmd, "build", "-tags", "renewkit_crashpoints", "-o", dir+string(filepath.Separator), b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s in %s: %w\n%s", b.pkg, b.dir, err, out)
		}
	}
	return nil
}

// certSpec is one [[certificate]] of a configuration.
type certSpec struct {
	name    string
	domains []string
	// extra is appended verbatim to the certificate's table.
	extra string
}

// setup is a storage root, an account and a configuration for the CLI,
// talking to a CA in this process.
type setup struct {
	t       testing.TB
	ca      *testacme.Server
	dir     string
	root    string
	account string
	config  string
	hookLog string
	// listen is the http-01 listen address ("" with an AlwaysValid CA: each
	// process then binds a port of its own that nobody connects to).
	listen string
	// certs are the configured certificates.
	certs []certSpec
	// top is extra top-level TOML (after the fixed keys).
	top string
	// retry is the [retry] table's body.
	retry string
	// hooks is the TOML value of defaults.hooks (default: the reload hook).
	hooks string
	// hookTimeout is defaults.hook_timeout.
	hookTimeout string
	// server and caFile, when set, replace the CA's directory URL and TLS
	// certificate file.
	server, caFile string
	// challenge, when set, replaces the body of [defaults.challenge]
	// (http-01 on listen).
	challenge string
	// noAgreeTOS leaves agree_tos out.
	noAgreeTOS bool
}

// newSetup makes a setup in a new temporary directory. With a real
// validating CA, the certificates' http-01 server listens on the CA's
// HTTP01Addr (one process at a time may run then).
func newSetup(t testing.TB, ca *testacme.Server, alwaysValid bool, certs ...certSpec) *setup {
	t.Helper()
	dir := t.TempDir()
	s := &setup{
		t: t, ca: ca, dir: dir,
		root:        filepath.Join(dir, "root"),
		account:     filepath.Join(dir, "account"),
		config:      filepath.Join(dir, "renewkit.toml"),
		hookLog:     filepath.Join(dir, "reloads.log"),
		certs:       certs,
		retry:       "retries = 3\ninitial = \"1ms\"\nmultiplier = 2.0\nmax = \"10ms\"\njitter = 0.2",
		hookTimeout: "10s",
	}
	if !alwaysValid {
		s.listen = ca.HTTP01Addr()
	} else {
		s.listen = "127.0.0.1:0"
	}
	s.hooks = fmt.Sprintf("[[%q, %q, %q]]", bin.hook, "reload", s.hookLog)
	s.writeConfig()
	return s
}

// writeConfig (re)writes the configuration file from s's fields.
func (s *setup) writeConfig() {
	s.t.Helper()
	server, caFile := s.ca.DirectoryURL(), s.ca.CAFile()
	if s.server != "" {
		server, caFile = s.server, s.caFile
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server = %q\nca_file = %q\nagree_tos = %t\nemail = \"crash@example.org\"\nroot = %q\naccount_dir = %q\n",
		server, caFile, !s.noAgreeTOS, s.root, s.account)
	b.WriteString(s.top + "\n")
	fmt.Fprintf(&b, "[retry]\n%s\n\n[defaults]\nhooks = %s\nhook_timeout = %q\n\n", s.retry, s.hooks, s.hookTimeout)
	if s.challenge != "" {
		fmt.Fprintf(&b, "[defaults.challenge]\n%s\n", s.challenge)
	} else {
		fmt.Fprintf(&b, "[defaults.challenge]\ntype = \"http-01\"\nlisten = %q\n", s.listen)
	}
	for _, c := range s.certs {
		q := make([]string, len(c.domains))
		for i, d := range c.domains {
			q[i] = strconv.Quote(d)
		}
		fmt.Fprintf(&b, "\n[[certificate]]\nname = %q\ndomains = [%s]\n%s\n", c.name, strings.Join(q, ", "), c.extra)
	}
	if err := os.WriteFile(s.config, []byte(b.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// lineage is the directory of the certificate named name.
func (s *setup) lineage(name string) string { return filepath.Join(s.root, name) }

// childEnv is this process's environment without crash-point variables,
// plus extra.
func childEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "RENEWKIT_") })
	return append(env, extra...)
}

// command returns the CLI with the setup's configuration, JSON logs at
// Debug (the summary of a certificate that was not due is a Debug record)
// and args; env is added to the environment.
func (s *setup) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	all := append([]string{"-config", s.config, "-log-format", "json", "-log-level", "debug"}, args...)
	cmd := exec.CommandContext(ctx, bin.cli, all...)
	cmd.Env = childEnv(env...)
	cmd.Dir = s.dir
	return cmd
}

// run is one finished CLI process.
type run struct {
	code     int  // exit code; -1 when killed by a signal
	killed   bool // died of SIGKILL
	stdout   string
	stderr   string
	duration time.Duration
	maxRSS   int64 // peak resident set size in bytes (Linux), 0 if unknown
}

// summaries returns the per-certificate summary records (msg=certificate)
// of the run's JSON log, by name.
func (r run) summaries() map[string]map[string]any {
	out := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(r.stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec["msg"] != "certificate" {
			continue
		}
		name, _ := rec["name"].(string)
		out[name] = rec
	}
	return out
}

// outcome is the summary outcome of the certificate name, or "".
func (r run) outcome(name string) string {
	o, _ := r.summaries()[name]["outcome"].(string)
	return o
}

func (r run) String() string {
	return fmt.Sprintf("exit %d (killed %v) after %v\nstdout:\n%s\nstderr:\n%s", r.code, r.killed, r.duration.Round(time.Millisecond), r.stdout, r.stderr)
}

// wait waits for a started command and describes how it ended.
func wait(cmd *exec.Cmd, start time.Time) run {
	err := cmd.Wait()
	r := run{duration: time.Since(start)}
	if b, ok := cmd.Stdout.(*bytes.Buffer); ok {
		r.stdout = b.String()
	}
	if b, ok := cmd.Stderr.(*bytes.Buffer); ok {
		r.stderr = b.String()
	}
	r.code = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = int64(ru.Maxrss) * 1024 // kilobytes on Linux
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		r.killed = true
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		r.code = -2
		r.stderr += "\n(wait: " + err.Error() + ")"
	}
	return r
}

// start starts the CLI with captured output.
func (s *setup) start(ctx context.Context, env []string, args ...string) (*exec.Cmd, time.Time) {
	s.t.Helper()
	cmd := s.command(ctx, env, args...)
	cmd.Stdout, cmd.Stderr = new(bytes.Buffer), new(bytes.Buffer)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", bin.cli, err)
	}
	return cmd, t0
}

// run runs the CLI to its end.
func (s *setup) run(env []string, args ...string) run {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, t0 := s.start(ctx, env, args...)
	return wait(cmd, t0)
}

// mustRun runs the CLI and fails the test unless it exits with code.
func (s *setup) mustRun(code int, args ...string) run {
	s.t.Helper()
	r := s.run(nil, args...)
	if r.code != code {
		s.t.Fatalf("renew-certificates %s: want exit %d, got %v", strings.Join(args, " "), code, r)
	}
	return r
}

// reloads returns the serials the deploy hook saw, and fails the test on a
// hook run that found the served files inconsistent.
func (s *setup) reloads() map[string]int {
	s.t.Helper()
	rs, err := served.ReadReloads(s.hookLog)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, r := range rs {
		if strings.HasPrefix(r.Verdict, "bad") {
			s.t.Errorf("the deploy hook of serial %s (generation %s) found the served files inconsistent: %s", r.Serial, r.Generation, r.Verdict)
		}
	}
	return served.ReloadedSerials(rs)
}

// leftovers lists what a killed run may leave in a lineage (see
// served.Leftovers).
func leftovers(dir string) []string { return served.Leftovers(dir) }

// accountLeftovers lists temporary files in an account directory.
func accountLeftovers(dir string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && e.Name() != ".lock" {
			out = append(out, e.Name())
		}
	}
	return out
}

// snapshotFiles returns the bytes of the served files of dir (nil for a
// file that cannot be read).
func snapshotFiles(dir string) map[string][]byte {
	m := map[string][]byte{}
	for _, f := range served.Files() {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			m[f] = b
		}
	}
	return m
}

// workers is how many subtests of a table run at once: RENEWKIT_CRASH_WORKERS,
// else 2 (the suite's children are CPU-bound; this machine class has 2 cores).
func workers(t *testing.T) int {
	if v := os.Getenv("RENEWKIT_CRASH_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("RENEWKIT_CRASH_WORKERS=%q: want a positive number", v)
		}
		return n
	}
	return 2
}

// concurrently runs f as one subtest per item, at most n at once. The
// subtests do not call t.Parallel, so they do not count against -parallel
// (which is left to the top-level tests of the package).
func concurrently[T any](t *testing.T, n int, items []T, name func(T) string, f func(t *testing.T, i int, item T)) {
	t.Helper()
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(name(it), func(t *testing.T) { f(t, i, it) })
		})
	}
	wg.Wait()
}
