package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runBin runs the built program as its own process and returns its exit
// code, standard output and error, and how long it took.
func runBin(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String(), took
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return 0, out.String(), errOut.String(), took
}

// TestServeBusyPortNamesHolder: -serve on an address another process holds
// fails at once, naming the process (here: the test).
func TestServeBusyPortNamesHolder(t *testing.T) {
	bin := buildBinary(t)
	ca := startCA(t)
	env := newEnv(t, ca, "", "name = \"a\"\ndomains = [\"a.example.test\"]")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, stderr, took := runBin(t, bin, nil, "-serve", "-config", env.config, "-listen", ln.Addr().String())
	want := "the port is held by PID " + strconv.Itoa(os.Getpid())
	if code != ExitFailed || !strings.Contains(stderr, want) || !strings.Contains(stderr, "serve.listen "+ln.Addr().String()) {
		t.Errorf("exit code %d, want %d and %q in:\n%s", code, ExitFailed, want, stderr)
	}
	if took > 5*time.Second {
		t.Errorf("took %v to fail, want under 5s", took)
	}
}

// TestServeLogsStoppingBeforeStopped: the record of the end comes after
// the record of the stop's beginning.
func TestServeLogsStoppingBeforeStopped(t *testing.T) {
	bin := buildBinary(t)
	ca := startCA(t)
	env := newEnv(t, ca, "", "name = \"a\"\ndomains = [\"a.example.test\"]")
	for range 3 {
		p := startServe(t, bin, env)
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, time.Minute); code != ExitOK {
			t.Fatalf("exit code %d:\n%s", code, p.stderr.String())
		}
		log := p.stderr.String()
		stopping, stopped := strings.Index(log, "msg=stopping"), strings.Index(log, "msg=stopped")
		if stopping < 0 || stopped < stopping {
			t.Fatalf("\"stopping\" at %d, \"stopped\" at %d, want both, in that order:\n%s", stopping, stopped, log)
		}
	}
}

// TestVersionFromLinker builds the program the way the Dockerfile does
// (no VCS metadata, -trimpath, the version and revision given to the
// linker by name) and checks that -version prints them, not "(devel)".
// The Dockerfile must name the same variables.
func TestVersionFromLinker(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{"-X main.version=${VERSION}", "-X main.revision=${REVISION}", "ARG VERSION", "ARG REVISION"} {
		if !strings.Contains(string(df), x) {
			t.Errorf("the Dockerfile does not contain %q", x)
		}
	}
	bin := filepath.Join(t.TempDir(), "renew-certificates")
	const rev = "0123456789abcdef0123456789abcdef01234567"
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-X main.version=v1.2.3 -X main.revision="+rev, "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	code, stdout, stderr, _ := runBin(t, bin, nil, "-version")
	if code != ExitOK || !strings.HasPrefix(stdout, "renew-certificates v1.2.3 0123456789ab go1.") {
		t.Errorf("-version: exit code %d, %q %q", code, stdout, stderr)
	}
}
