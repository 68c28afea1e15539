//go:build unix

package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

// slack is what a test's clock allows beyond a bound the program keeps
// by its own clock (its exit code says whether it did), for a loaded
// machine.
const slack = 2 * time.Second

// serveProc is a running `renew-certificates -serve`.
type serveProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
	// addr is where its endpoints listen.
	addr string
}

// startServe starts the built program with -serve on env's configuration,
// its endpoints on a free loopback port, and waits until it serves.
func startServe(t *testing.T, bin string, env *testEnv, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, append([]string{"-serve", "-config", env.config, "-listen", "127.0.0.1:0"}, args...)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.wait(t, time.Minute)
	})
	m := p.waitLog(t, regexp.MustCompile(`msg=serving .*listen=(\S+)`), 30*time.Second)
	p.addr = m[1]
	return p
}

// wait waits for the process to exit and returns its exit code (-1 when
// killed by a signal).
func (p *serveProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(d):
		t.Fatalf("still running after %v:\n%s", d, p.stderr.String())
		return 0
	}
}

// poll calls cond until it returns true, failing the test after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// waitLog waits for a log line matching re and returns its submatches.
func (p *serveProc) waitLog(t *testing.T, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	var m []string
	poll(t, d, fmt.Sprintf("log %q", re), func() bool {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("the program exited (%v) before logging %q:\n%s", err, re, p.stderr.String())
		default:
		}
		m = re.FindStringSubmatch(p.stderr.String())
		return m != nil
	})
	return m
}

// readyReport is /readyz's JSON body (renew.Readiness's report), as a
// client reads it.
type readyReport struct {
	Ready        bool `json:"ready"`
	Certificates int  `json:"certificates"`
	Failing      []struct {
		Name    string `json:"name"`
		Problem string `json:"problem"`
		Alert   string `json:"alert"`
	} `json:"failing"`
	Warnings []struct {
		Name    string `json:"name"`
		Problem string `json:"problem"`
	} `json:"warnings"`
	ReadyLevel string `json:"ready_level"`
	Fleet      *struct {
		Reachable *bool  `json:"reachable"`
		Error     string `json:"error"`
	} `json:"fleet"`
}

// readyz fetches /readyz.
func (p *serveProc) readyz(t *testing.T) (int, readyReport) {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var rep readyReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	return resp.StatusCode, rep
}

// tinyCA is a CA whose only profile issues certificates valid for
// lifetime.
func tinyCA(t *testing.T, lifetime time.Duration) *testacme.Server {
	return testacme.New(t, testacme.Options{Profiles: map[string]time.Duration{"default": 0, "shortlived": 0, "tiny": lifetime}})
}

// TestServeRenewsShortLivedWhileServing runs -serve on certificates valid
// for ten seconds (renewed with two thirds left: six seconds of margin for
// a loaded machine) while a TLS server reads combined.pem at every
// handshake and a client handshakes with it in a loop: -serve renews them
// several times, no handshake fails and no expired certificate is served.
// Then SIGTERM stops it with exit code 0, its hooks having run once per
// generation.
func TestServeRenewsShortLivedWhileServing(t *testing.T) {
	bin := buildBinary(t)
	ca := tinyCA(t, 10*time.Second)
	dir := t.TempDir()
	reloads := filepath.Join(dir, "reloads.log")
	env := newEnv(t, ca, "", fmt.Sprintf(`name = "a"
domains = ["a.example.test"]
policy = "2/3"
hooks = [[%q, %q, %q]]`, hookArgvArgs(t, reloads)...))
	appendConfig(t, env, "\n[serve]\ngrace = \"5s\"\n")
	p := startServe(t, bin, env)
	lineage := filepath.Join(env.root, "a")
	poll(t, 30*time.Second, "the first certificate", func() bool {
		_, err := served.ReadCombined(lineage)
		return err == nil
	})

	// A server that reads combined.pem (one file: one generation) at every
	// handshake, as HAProxy-style servers do.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		b, err := os.ReadFile(filepath.Join(lineage, "combined.pem"))
		if err != nil {
			return nil, err
		}
		c, err := tls.X509KeyPair(b, b)
		return &c, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	serials := map[string]bool{}
	handshakes := 0
	deadline := time.Now().Add(45 * time.Second)
	for len(serials) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d distinct certificates served in 45 s, want 4:\n%s", len(serials), p.stderr.String())
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.RootPool(), ServerName: "a.example.test"})
		if err != nil {
			// Verification includes the validity period: an expired
			// certificate fails here.
			t.Fatalf("handshake %d: %v", handshakes+1, err)
		}
		leaf := c.ConnectionState().PeerCertificates[0]
		if now := time.Now(); now.After(leaf.NotAfter) {
			t.Fatalf("served a certificate that expired at %v (now %v)", leaf.NotAfter, now)
		}
		serials[served.Serial(leaf)] = true
		handshakes++
		c.Close()
	}
	t.Logf("%d handshakes, %d certificates, none failed", handshakes, len(serials))

	sent := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 10*time.Second); code != exitOK {
		t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, p.stderr.String())
	}
	if took := time.Since(sent); took > 5*time.Second+slack {
		t.Errorf("stopped %v after SIGTERM, grace is 5s", took)
	}
	// Every generation served was reloaded, each by a hook that found the
	// files whole.
	lines, err := readLines(reloads)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if !strings.Contains(l, "load and match") {
			t.Errorf("hook saw a bad pair: %s", l)
		}
	}
	st := status(t, env, "a")
	if len(lines) < st.Generation || st.Generation < 4 || len(st.HooksPending) > 0 {
		t.Errorf("%d reloads for %d generations, %d hooks pending", len(lines), st.Generation, len(st.HooksPending))
	}
}

// TestServeStopsGracefully sends SIGTERM at random instants of a -serve
// process renewing a short-lived certificate with a slow deploy hook: it
// exits 0 within the grace, never leaves a step half done (no temporary
// file or directory, no hook left pending), and the next run finishes
// whatever was journaled without another issuance, as after a SIGKILL.
func TestServeStopsGracefully(t *testing.T) {
	bin := buildBinary(t)
	ca := tinyCA(t, 6*time.Second)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	reloads := filepath.Join(dir, "reloads.log")
	env := newEnv(t, ca, "", fmt.Sprintf(`name = "a"
domains = ["a.example.test"]
policy = "1/2"
hooks = [[%q, %q, %q], ["sleep", "1"]]`, hookArgvArgs(t, reloads)...))
	appendConfig(t, env, "\n[serve]\ngrace = \"4s\"\n")
	lineage := filepath.Join(env.root, "a")
	for i := range 4 {
		p := startServe(t, bin, env)
		var delay time.Duration
		if i == 0 {
			// While a hook runs: the demo hook has logged a reload, the
			// second hook (sleep 1) is starting or running.
			poll(t, 30*time.Second, "a reload", func() bool {
				lines, _ := readLines(reloads)
				return len(lines) > 0
			})
		} else {
			delay = time.Duration(rnd.Int64N(int64(4 * time.Second)))
			time.Sleep(delay) // the random instant the signal arrives at
		}
		sent := time.Now()
		p.cmd.Process.Signal(syscall.SIGTERM)
		code := p.wait(t, 10*time.Second)
		took := time.Since(sent)
		if code != exitOK || took > 4*time.Second+slack {
			t.Fatalf("round %d (signal after %v): exit code %d after %v, want 0 within 4s:\n%s", i, delay, code, took, p.stderr.String())
		}
		// No step was cut in the middle: nothing temporary is left, and
		// the hooks of every installed generation ran. Only an order's
		// journal (pending.key) may remain, for the next start.
		var left []string
		for _, l := range served.Leftovers(lineage) {
			if l != "pending.key" {
				left = append(left, l)
			}
		}
		if len(left) > 0 {
			t.Errorf("round %d (signal after %v): leftovers %v", i, delay, left)
		}
		if st := status(t, env, "a"); len(st.HooksPending) > 0 {
			t.Errorf("round %d (signal after %v): hooks pending after a graceful stop: %+v", i, delay, st.HooksPending)
		}
		if _, err := os.Stat(filepath.Join(lineage, "current")); err == nil {
			checkLineage(t, env, "a")
		}
		t.Logf("round %d: SIGTERM after %v, exit 0 after %v", i, delay.Round(time.Millisecond), took.Round(time.Millisecond))
	}
	// SIGKILL at a random instant: covered by the promise like any run.
	p := startServe(t, bin, env)
	delay := time.Duration(rnd.Int64N(int64(4 * time.Second)))
	time.Sleep(delay) // the random instant the signal arrives at
	p.cmd.Process.Kill()
	p.wait(t, 10*time.Second)
	t.Logf("SIGKILL after %v", delay.Round(time.Millisecond))

	// The next start finishes what was journaled: afterwards nothing is
	// left, and every certificate the CA issued was installed.
	env.mustRun(t, exitOK)
	if left := served.Leftovers(lineage); len(left) > 0 {
		t.Errorf("leftovers after the next run: %v", left)
	}
	st := status(t, env, "a")
	if st.OrderInFlight != "" || len(st.HooksPending) > 0 {
		t.Errorf("after the next run: order %q, hooks pending %v", st.OrderInFlight, st.HooksPending)
	}
	if issued := ca.Stats("a.example.test").Issued; issued != st.Generation {
		t.Errorf("CA issued %d certificates, %d generations installed", issued, st.Generation)
	}
}

// TestServeReloadAndReadiness changes the configuration of a running
// -serve with SIGHUP. A valid one takes effect: a certificate added is
// issued, one whose names changed is renewed at once (and, its HTTP-01
// listener being where the CA does not look, fails for good: /readyz turns
// 503 and names it). An invalid one is reported with file:line and the
// running one stays in force. Removing a certificate and undoing the change
// makes /readyz pass again.
func TestServeReloadAndReadiness(t *testing.T) {
	bin := buildBinary(t)
	ca := startCA(t)
	a := `name = "a"` + "\n" + `domains = ["a.example.test"]`
	env := newEnv(t, ca, "", a)
	good, err := os.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, bin, env)
	readyIs := func(want bool, failing ...string) func() bool {
		return func() bool {
			code, rep := p.readyz(t)
			var names []string
			for _, f := range rep.Failing {
				names = append(names, f.Name)
			}
			return rep.Ready == want && (code == http.StatusOK) == want && slices.Equal(names, failing)
		}
	}
	poll(t, 30*time.Second, "/readyz ready with a", readyIs(true))
	first := checkLineage(t, env, "a")

	// a gets a second name and an HTTP-01 listener on a port the CA does
	// not connect to: due at once, its validation fails for good. b is
	// added.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wrong := ln.Addr().String()
	ln.Close()
	changed := strings.Replace(string(good), `domains = ["a.example.test"]`,
		fmt.Sprintf("domains = [\"a.example.test\", \"a2.example.test\"]\n[certificate.challenge]\ntype = \"http-01\"\nlisten = %q", wrong), 1)
	writeConfig(t, env, changed+"\n[[certificate]]\nname = \"b\"\ndomains = [\"b.example.test\"]\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	poll(t, 60*time.Second, "/readyz failing a", readyIs(false, "a"))
	_, rep := p.readyz(t)
	if !strings.HasPrefix(rep.Failing[0].Problem, "cannot be renewed: ") || rep.Certificates != 2 {
		t.Errorf("/readyz: %+v", rep)
	}
	poll(t, 30*time.Second, "b issued", func() bool {
		_, err := served.ReadPair(filepath.Join(env.root, "b"))
		return err == nil
	})
	if now := checkLineage(t, env, "a"); !now.Equal(first) {
		t.Errorf("a's served certificate changed although its renewal failed")
	}

	// An invalid configuration: reported with its line; the running one
	// stays in force (a still fails, b is still there).
	writeConfig(t, env, string(good)+"\nbogus_key = 1\n")
	line := strings.Count(string(good), "\n") + 2
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf("%s:%d:", env.config, line))), 30*time.Second)
	if !strings.Contains(p.stderr.String(), "configuration not reloaded") {
		t.Errorf("no 'configuration not reloaded' record:\n%s", p.stderr.String())
	}
	if _, rep := p.readyz(t); rep.Ready || rep.Certificates != 2 {
		t.Errorf("after the invalid configuration: %+v, want the old one (a failing, and b) in force", rep)
	}

	// Back to a alone, as first configured: it is not due, so ready again.
	writeConfig(t, env, string(good))
	p.cmd.Process.Signal(syscall.SIGHUP)
	poll(t, 30*time.Second, "/readyz ready with a alone", readyIs(true))
	if _, rep := p.readyz(t); rep.Certificates != 1 {
		t.Errorf("certificates reported: %d, want 1", rep.Certificates)
	}
	// /metrics and /healthz answer.
	for _, path := range []string{"/metrics", "/healthz"} {
		resp, err := http.Get("http://" + p.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", path, resp.Status)
		}
		if path == "/metrics" && !strings.Contains(string(body), `renewkit_certificate_not_after_timestamp_seconds{name="a"}`) {
			t.Errorf("/metrics lacks a's expiry:\n%s", body)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 20*time.Second); code != exitOK {
		t.Fatalf("exit code %d, want 0:\n%s", code, p.stderr.String())
	}
}

func appendConfig(t *testing.T, env *testEnv, s string) {
	t.Helper()
	b, err := os.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, env, string(b)+s)
}

// writeConfig replaces env's configuration the way an editor or a
// ConfigMap update does: a new file renamed over the old one.
func writeConfig(t *testing.T, env *testEnv, s string) {
	t.Helper()
	tmp := env.config + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, env.config); err != nil {
		t.Fatal(err)
	}
}

// status reads a lineage's status from disk.
func status(t *testing.T, env *testEnv, name string) renew.Status {
	t.Helper()
	cfg, err := loadConfig(env.config, overrides{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Certificates {
		if c.Name == name {
			return (&renew.Renewer{Root: cfg.Root}).Status(c.Certificate)[0]
		}
	}
	t.Fatalf("no certificate %q configured", name)
	return renew.Status{}
}

// TestServeStopBounds stops -serve while a deploy hook hangs: with a short
// grace the hook is killed in time and the program still exits 0 within
// the grace, the hook left pending for the next run; with a long grace a
// second SIGTERM ends the program at once.
func TestServeStopBounds(t *testing.T) {
	bin := buildBinary(t)
	start := func(t *testing.T, grace string) (*serveProc, *testEnv) {
		ca := startCA(t)
		reloads := filepath.Join(t.TempDir(), "reloads.log")
		env := newEnv(t, ca, "", fmt.Sprintf(`name = "a"
domains = ["a.example.test"]
hooks = [[%q, %q, %q], ["sleep", "8"]]`, hookArgvArgs(t, reloads)...))
		appendConfig(t, env, "\n[serve]\ngrace = \""+grace+"\"\n")
		p := startServe(t, bin, env)
		// The first hook has logged its reload: the second (sleep 8) is
		// starting or running.
		poll(t, 30*time.Second, "a reload", func() bool {
			lines, _ := readLines(reloads)
			return len(lines) > 0
		})
		return p, env
	}
	t.Run("grace bounds a hanging hook", func(t *testing.T) {
		t.Parallel()
		p, env := start(t, "5s")
		sent := time.Now()
		p.cmd.Process.Signal(syscall.SIGTERM)
		code := p.wait(t, 15*time.Second)
		// Exit code 0 says the program stopped within its grace by its own
		// clock (past it, it exits 3); the test's clock allows for a
		// loaded machine.
		if took := time.Since(sent); code != exitOK || took > 5*time.Second+slack {
			t.Fatalf("exit code %d after %v, want 0 within 5s:\n%s", code, took, p.stderr.String())
		}
		st := status(t, env, "a")
		if len(st.HooksPending) != 1 || len(st.HooksPending[0].Pending) != 1 || st.HooksPending[0].Pending[0].Name == "" {
			t.Fatalf("want the killed hook pending, have %+v", st.HooksPending)
		}
	})
	t.Run("second signal exits at once", func(t *testing.T) {
		t.Parallel()
		p, _ := start(t, "20s")
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.waitLog(t, regexp.MustCompile(`msg=stopping`), 10*time.Second)
		sent := time.Now()
		p.cmd.Process.Signal(syscall.SIGTERM)
		code := p.wait(t, 10*time.Second)
		if took := time.Since(sent); code != -1 || took > slack {
			t.Fatalf("exit code %d %v after the second signal, want killed by it at once:\n%s", code, took, p.stderr.String())
		}
	})
}
