package main

import (
	"fmt"
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
	if code != exitFailed || !strings.Contains(stderr, want) || !strings.Contains(stderr, "serve.listen "+ln.Addr().String()) {
		t.Errorf("exit code %d, want %d and %q in:\n%s", code, exitFailed, want, stderr)
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
		if code := p.wait(t, time.Minute); code != exitOK {
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
	if code != exitOK || !strings.HasPrefix(stdout, "renew-certificates v1.2.3 0123456789ab go1.") {
		t.Errorf("-version: exit code %d, %q %q", code, stdout, stderr)
	}
}

// asNobody runs the built program as uid/gid 65534 (nobody) with setpriv.
func asNobody(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin}, args...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatalf("setpriv: %v", err)
	}
	return 0, string(out)
}

// TestRootThenServiceUser: a first run by hand as root, then the service
// user (issue 24 item 3). The root run on the service user's storage root
// is refused before it creates anything, with the right words; the service
// user on a root-owned root, or below an account directory a root run
// made, is told the one chown that fixes it; -dry-run gives one fix for a
// nested root that does not exist yet.
func TestRootThenServiceUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (to run as another user)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv")
	}
	bin := buildBinary(t)
	// Everything readable by nobody: the binary, the CA file, the config.
	dir, err := os.MkdirTemp("", "renewkit-users-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "renew-certificates")
	if b, err := os.ReadFile(bin); err != nil || os.WriteFile(pub, b, 0o755) != nil {
		t.Fatal("copy the binary", err)
	}
	ca := startCA(t)
	caPEM, err := os.ReadFile(ca.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	config := filepath.Join(dir, "config.toml")
	writeConf := func(root string) {
		conf := fmt.Sprintf("server = %q\nca_file = %q\nagree_tos = true\nroot = %q\n\n[[certificate]]\nname = \"a\"\ndomains = [\"a.example.test\"]\nchallenge = { type = \"http-01\", listen = \"127.0.0.1:0\" }\n",
			ca.DirectoryURL(), caFile, root)
		if err := os.WriteFile(config, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(root)

	// 1. The service user's root, a run as root: refused, nothing created.
	if err := os.Mkdir(root, 0o755); err != nil || os.Chown(root, 65534, 65534) != nil {
		t.Fatal("make the root", err)
	}
	code, _, stderr, took := runBin(t, pub, nil, "-config", config)
	if code != exitFailed || !strings.Contains(stderr, "is owned by nobody") || !strings.Contains(stderr, "sudo -u nobody") ||
		strings.Contains(stderr, "bad configuration") || strings.Contains(stderr, "insecure") {
		t.Errorf("root on nobody's root: exit %d:\n%s", code, stderr)
	}
	if took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("the refused root run left %v in the storage root", ents)
	}

	// 2. An account directory a root run made (the old behaviour, or by
	// hand): the service user is told to chown it, not to chmod.
	acme := filepath.Join(root, ".acme")
	if err := os.MkdirAll(filepath.Join(acme, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	code, out := asNobody(t, pub, "-config", config, "-dry-run", "-account-dir", filepath.Join(acme, "x", "y"))
	if code == exitOK || !strings.Contains(out, acme+" is owned by root") || !strings.Contains(out, "chown -R nobody "+acme) || strings.Contains(out, "which owns") {
		t.Errorf("nobody below root's account directory: exit %d:\n%s", code, out)
	}

	// 3. A root-owned root: chown -R nobody ROOT.
	rootOwned := filepath.Join(dir, "root-owned")
	if err := os.Mkdir(rootOwned, 0o755); err != nil {
		t.Fatal(err)
	}
	writeConf(rootOwned)
	code, out = asNobody(t, pub, "-config", config)
	if code != exitFailed || !strings.Contains(out, "chown -R nobody "+rootOwned) || strings.Contains(out, "bad configuration") {
		t.Errorf("nobody on a root-owned root: exit %d:\n%s", code, out)
	}

	// 4. -dry-run for a nested root that does not exist: one fix that
	// leaves every new level the service user's.
	nested := filepath.Join(rootOwned, "a", "b")
	writeConf(nested)
	code, out = asNobody(t, pub, "-config", config, "-dry-run")
	want := "mkdir -p " + nested + " && chown -R nobody " + filepath.Join(rootOwned, "a")
	if code == exitOK || !strings.Contains(out, want) {
		t.Errorf("-dry-run of a nested root: exit %d, want %q in:\n%s", code, want, out)
	}
}
