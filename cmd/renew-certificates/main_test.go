package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/testacme"
)

// TestMain lets the test binary act as a deploy hook (see testHook).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == testHookFlag {
		os.Exit(testHook(os.Args[2:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	for _, dir := range []string{binDir, crashDir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// The program built once per test binary, for tests that signal a real
// process.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// buildBinary builds the program with `go build` (once) and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "renew-certificates-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "renew-certificates")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCLI calls run in-process and returns the exit code, stdout and stderr.
func runCLI(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// startCA starts a test CA offering one profile (Pebble picks a random
// profile for orders naming none).
func startCA(t *testing.T) *testacme.Server {
	t.Helper()
	return testacme.New(t, testacme.Options{Profiles: map[string]time.Duration{"shortlived": 0}})
}

// testEnv is a storage root and a configuration file for a test CA.
type testEnv struct {
	ca     *testacme.Server
	root   string
	config string
}

// newEnv writes a configuration for ca with the given certificates, each a
// TOML fragment after "[[certificate]]". challenge is the
// [defaults.challenge] body ("" for the built-in HTTP-01 listener).
func newEnv(t *testing.T, ca *testacme.Server, challenge string, certs ...string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	env := &testEnv{ca: ca, root: filepath.Join(dir, "root"), config: filepath.Join(dir, "config.toml")}
	if challenge == "" {
		challenge = "type = \"http-01\"\nlisten = " + strconv.Quote(ca.HTTP01Addr())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server = %q\nca_file = %q\nagree_tos = true\nemail = \"test@example.org\"\nroot = %q\n\n",
		ca.DirectoryURL(), ca.CAFile(), env.root)
	fmt.Fprintf(&b, "[retry]\nretries = -1\n\n[defaults.challenge]\n%s\n", challenge)
	for _, c := range certs {
		fmt.Fprintf(&b, "\n[[certificate]]\n%s\n", c)
	}
	if err := os.WriteFile(env.config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return env
}

// run runs the program on env's configuration with extra flags.
func (e *testEnv) run(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, ctx, append([]string{"-config", e.config}, args...)...)
}

// mustRun runs and fails the test unless the exit code is want.
func (e *testEnv) mustRun(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	code, out, errOut := e.run(t, context.Background(), args...)
	if code != want {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want, out, errOut)
	}
	return out, errOut
}

// testHookFlag is the first argument that makes the test binary act as a
// deploy hook (testHook), so that tests need no shell and no other program.
const testHookFlag = "-test-hook"

// hookArgvArgs is the command line of the test deploy hook appending to
// logFile (this test binary in its hook mode), as arguments for a
// configuration's hooks = [[%q, %q, %q]].
func hookArgvArgs(t *testing.T, logFile string) []any {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []any{exe, testHookFlag, logFile}
}

// testHook is the tests' deploy hook: it loads the installed certificate
// and key as a web server would on reload, appends a line to the log file
// named by args[0], and prints it.
func testHook(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: %s LOGFILE (a deploy hook)\n", testHookFlag)
		return exitUsage
	}
	name, gen, serial := os.Getenv("RENEWKIT_NAME"), os.Getenv("RENEWKIT_GENERATION"), os.Getenv("RENEWKIT_SERIAL")
	if name == "" {
		fmt.Fprintln(stderr, "test hook: RENEWKIT_NAME is not set; this mode is run by renewkit as a deploy hook")
		return exitUsage
	}
	if _, err := tls.LoadX509KeyPair(os.Getenv("RENEWKIT_FULLCHAIN"), os.Getenv("RENEWKIT_KEY")); err != nil {
		fmt.Fprintf(stderr, "test hook: %s: certificate and key do not load: %v\n", name, err)
		return exitFailed
	}
	line := fmt.Sprintf("%s  reloaded %s: generation %s, serial %s; fullchain.pem and privkey.pem load and match",
		time.Now().UTC().Format("15:04:05.000Z"), name, gen, short(serial))
	f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(stderr, "test hook: %v\n", err)
		return exitFailed
	}
	_, err = fmt.Fprintln(f, line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "test hook: %v\n", err)
		return exitFailed
	}
	fmt.Fprintln(stdout, line)
	return exitOK
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}
