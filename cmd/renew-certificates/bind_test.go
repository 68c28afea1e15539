//go:build unix

package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// namedServer is a real BIND named on a loopback port, primary for
// example.test (updates of TXT records allowed for keyName) and
// refused.test (updates allowed for another key only).
type namedServer struct {
	bin, dir, conf string
	addr           string // 127.0.0.1:PORT, UDP and TCP
	secret         string // base64 HMAC-SHA256 secret of keyName

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  syncBuffer // named's log, for failures
}

const namedKey = "renewkit-key"

// startNamed starts named, or skips the test where BIND is not installed
// (and fails it under CI=true, where .ci/run installs it).
func startNamed(t *testing.T) *namedServer {
	t.Helper()
	bin, err := exec.LookPath("named")
	if err != nil {
		bin = "/usr/sbin/named"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("named (Debian package bind9) is not installed; .ci/run installs it")
			}
			t.Skip("named (Debian package bind9) is not installed")
		}
	}
	n := &namedServer{bin: bin, dir: t.TempDir(), addr: freeUDPTCPPort(t), secret: randomSecret(t)}
	_, port, _ := net.SplitHostPort(n.addr)
	n.conf = filepath.Join(n.dir, "named.conf")
	conf := fmt.Sprintf(`options {
	directory %[1]q;
	pid-file %[6]q;
	session-keyfile %[7]q;
	listen-on port %[2]s { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	allow-query { any; };
};
controls { };
key "%[3]s" { algorithm hmac-sha256; secret %[4]q; };
key "other-key" { algorithm hmac-sha256; secret %[5]q; };
zone "example.test" { type primary; file "example.test.db"; update-policy { grant %[3]s zonesub TXT; }; };
zone "refused.test" { type primary; file "refused.test.db"; update-policy { grant other-key zonesub TXT; }; };
`, n.dir, port, namedKey, n.secret, randomSecret(t), filepath.Join(n.dir, "named.pid"), filepath.Join(n.dir, "session.key"))
	files := map[string]string{"named.conf": conf}
	for _, z := range []string{"example.test", "refused.test"} {
		files[z+".db"] = fmt.Sprintf("$TTL 60\n@ IN SOA ns.%[1]s. admin.%[1]s. 1 60 60 600 60\n@ IN NS ns.%[1]s.\nns IN A 127.0.0.1\n@ IN A 127.0.0.1\n* IN A 127.0.0.1\n", z)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(n.dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.stop)
	return n
}

// start runs named in the foreground (-g) and returns once it says it is
// running.
func (n *namedServer) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	// -g: foreground, log to stderr; -n 1: one worker; -u is not needed
	// (as root, named keeps root on a loopback port; as a user, it stays
	// that user).
	cmd := exec.Command(n.bin, "-g", "-n", "1", "-c", n.conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start named: %w", err)
	}
	running := make(chan struct{})
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(&n.out, line)
			if !signalled && strings.HasSuffix(line, "running") {
				close(running)
				signalled = true
			}
		}
		cmd.Wait()
		close(done)
	}()
	select {
	case <-running:
	case <-done:
		return fmt.Errorf("named exited at start:\n%s", n.out.String())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("named did not start within 20s:\n%s", n.out.String())
	}
	n.cmd, n.done = cmd, done
	return nil
}

// stop stops named (SIGTERM; SIGKILL if it lingers) and waits for it.
// Idempotent.
func (n *namedServer) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
}

// txt returns the TXT values of name, asked of named over TCP.
func (n *namedServer) txt(t *testing.T, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	in, _, err := c.Exchange(m, n.addr)
	if err != nil {
		t.Fatalf("query %s at named: %v", name, err)
	}
	var out []string
	for _, rr := range in.Answer {
		if tx, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(tx.Txt, ""))
		}
	}
	return out
}

// env returns the challenge env table for the rfc2136 provider, with
// overrides.
func (n *namedServer) env(over map[string]string) map[string]string {
	e := map[string]string{
		"RFC2136_NAMESERVER":        n.addr,
		"RFC2136_TSIG_KEY":          namedKey,
		"RFC2136_TSIG_SECRET":       n.secret,
		"RFC2136_TSIG_ALGORITHM":    "hmac-sha256.",
		"RFC2136_ZONES":             "example.test,refused.test",
		"RFC2136_SEQUENCE_INTERVAL": "1",
		"RFC2136_DNS_TIMEOUT":       "3",
	}
	for k, v := range over {
		e[k] = v
	}
	return e
}

// freeUDPTCPPort returns a 127.0.0.1 port free for UDP and TCP. The TCP
// check binds without SO_REUSEADDR (net.Listen sets it): a port another test
// reserved for a listener of its own (package loopport: bound, never
// listening) then counts as taken; with it, named was handed such a port.
func freeUDPTCPPort(t *testing.T) string {
	t.Helper()
	noReuse := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 0)
		}); err != nil {
			return err
		}
		return serr
	}}
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := noReuse.Listen(t.Context(), "tcp4", pc.LocalAddr().String())
		pc.Close()
		if err == nil {
			ln.Close()
			return pc.LocalAddr().String()
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return ""
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// bindEnv writes a configuration for ca whose certificates (TOML
// fragments) are validated by DNS-01 through named with envTable. Retries
// are on (one, after 200 ms), so that a local failure shows it is not
// retried.
func bindEnv(t *testing.T, ca *testacme.Server, n *namedServer, root string, envTable map[string]string, certs ...string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	env := &testEnv{ca: ca, root: root, config: filepath.Join(dir, "config.toml")}
	var b strings.Builder
	fmt.Fprintf(&b, "server = %q\nca_file = %q\nagree_tos = true\nemail = \"test@example.org\"\nroot = %q\n\n",
		ca.DirectoryURL(), ca.CAFile(), root)
	fmt.Fprintf(&b, "[retry]\nretries = 1\ninitial = \"200ms\"\njitter = -1\n\n")
	fmt.Fprintf(&b, "[defaults.challenge]\ntype = \"dns-01\"\nprovider = \"rfc2136\"\nresolvers = [%q]\npropagation_timeout = \"10s\"\nenv = {", n.addr)
	first := true
	for k, v := range envTable {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, " %s = %q", k, v)
	}
	b.WriteString(" }\n")
	for _, c := range certs {
		fmt.Fprintf(&b, "\n[[certificate]]\n%s\n", c)
	}
	if err := os.WriteFile(env.config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return env
}

// TestBIND runs DNS-01 against a real BIND: RFC 2136 updates signed with
// TSIG, and the in-process CA validating through the same named.
func TestBIND(t *testing.T) {
	// lego's provider would look up CNAMEs of the challenge name through
	// the system resolver; the zones are given, so it needs no lookup.
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
	n := startNamed(t)
	ca := testacme.New(t, testacme.Options{Profiles: map[string]time.Duration{"shortlived": 0}, VAResolver: n.addr})
	noRecordLeft := func(t *testing.T, names ...string) {
		t.Helper()
		for _, name := range names {
			if v := n.txt(t, "_acme-challenge."+name); len(v) != 0 {
				t.Errorf("TXT record left behind at _acme-challenge.%s: %v", name, v)
			}
		}
	}

	t.Run("wildcard and apex, issue and renew", func(t *testing.T) {
		env := bindEnv(t, ca, n, filepath.Join(t.TempDir(), "root"), n.env(nil),
			`name = "wild"`+"\n"+`domains = ["*.example.test", "example.test"]`)
		_, log := env.mustRun(t, exitOK)
		if got := summaries(log); got["wild"] != "renewed" {
			t.Fatalf("summaries = %v\n%s", got, log)
		}
		first := checkLineage(t, env, "wild")
		_, log = env.mustRun(t, exitOK, "-force", "wild")
		if got := summaries(log); got["wild"] != "renewed" {
			t.Fatalf("renewal: summaries = %v\n%s", got, log)
		}
		if second := checkLineage(t, env, "wild"); second.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Error("-force did not renew")
		}
		noRecordLeft(t, "example.test")
	})

	t.Run("two lineages sharing a record in one run", func(t *testing.T) {
		env := bindEnv(t, ca, n, filepath.Join(t.TempDir(), "root"), n.env(nil),
			`name = "s1"`+"\n"+`domains = ["s.example.test"]`,
			`name = "s2"`+"\n"+`domains = ["*.s.example.test"]`)
		_, log := env.mustRun(t, exitOK)
		if got := summaries(log); got["s1"] != "renewed" || got["s2"] != "renewed" {
			t.Fatalf("summaries = %v\n%s", got, log)
		}
		noRecordLeft(t, "s.example.test")
	})

	t.Run("two lineages sharing a record in two processes", func(t *testing.T) {
		bin := buildBinary(t)
		root := filepath.Join(t.TempDir(), "root")
		envs := []*testEnv{
			bindEnv(t, ca, n, root, n.env(nil), `name = "p1"`+"\n"+`domains = ["p.example.test", "www.p.example.test"]`),
			bindEnv(t, ca, n, root, n.env(nil), `name = "p2"`+"\n"+`domains = ["*.p.example.test"]`),
		}
		var wg sync.WaitGroup
		outs := make([]string, len(envs))
		errs := make([]error, len(envs))
		for k, e := range envs {
			wg.Go(func() {
				out, err := exec.Command(bin, "-config", e.config).CombinedOutput()
				outs[k], errs[k] = string(out), err
			})
		}
		wg.Wait()
		for k := range envs {
			if errs[k] != nil {
				t.Errorf("process %d: %v\n%s", k, errs[k], outs[k])
			}
		}
		noRecordLeft(t, "p.example.test", "www.p.example.test")
	})

	// Local failures: each is one order, never retried, and says what to fix.
	for _, tt := range []struct {
		name   string
		over   map[string]string
		domain string
		want   []string
	}{
		{"wrong secret", map[string]string{"RFC2136_TSIG_SECRET": randomSecret(t)}, "bad1.example.test",
			[]string{"BADSIG", "wrong secret", "env.RFC2136_TSIG_SECRET"}},
		{"wrong algorithm", map[string]string{"RFC2136_TSIG_ALGORITHM": "hmac-sha512."}, "bad2.example.test",
			[]string{"BADKEY", "hmac-sha512", "env.RFC2136_TSIG_ALGORITHM"}},
		{"refused zone", nil, "x.refused.test",
			[]string{"REFUSED", "zone refused.test.", "update-policy"}},
		{"zone not served", map[string]string{"RFC2136_ZONES": "example.test,unserved.test"}, "x.unserved.test",
			[]string{"NOTAUTH", "not authoritative for zone unserved.test.", "env.RFC2136_ZONES"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := n.env(tt.over)
			// Preflight, called directly: no CA, no record changed.
			p, err := providerWithEnv("rfc2136", e)
			if err != nil {
				t.Fatal(err)
			}
			perr := p.(*acmeissuer.RFC2136).PreflightNames(t.Context(), []string{tt.domain})
			var le *renew.LocalError
			if !errors.As(perr, &le) {
				t.Fatalf("Preflight = %v, want a *renew.LocalError", perr)
			}
			for _, w := range tt.want {
				if !strings.Contains(perr.Error(), w) {
					t.Errorf("Preflight error %q lacks %q", perr, w)
				}
			}

			before := ca.Stats().Orders
			env := bindEnv(t, ca, n, filepath.Join(t.TempDir(), "root"), e, `name = "bad"`+"\n"+`domains = [`+strconv.Quote(tt.domain)+`]`)
			code, _, log := env.run(t, t.Context())
			if code == exitOK || summaries(log)["bad"] != "failed" {
				t.Fatalf("exit %d, summaries %v, want a failure\n%s", code, summaries(log), log)
			}
			for _, w := range tt.want {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %q:\n%s", w, log)
				}
			}
			// The run's preflight (the provider's Preflight, before
			// ordering) finds it: no order at all. A Present that fails
			// the same way mid-order is not retried either
			// (acmeissuer's TestPresentLocalErrorIsPermanent).
			if got := ca.Stats().Orders - before; got != 0 {
				t.Errorf("%d orders, want 0 (the preflight finds a local failure before ordering)", got)
			}
			if !strings.Contains(log, "fault=local") {
				t.Errorf("log does not mark the failure local (fault=local):\n%s", log)
			}
			noRecordLeft(t, tt.domain)
		})
	}

	t.Run("good preflight", func(t *testing.T) {
		p, err := providerWithEnv("rfc2136", n.env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.(*acmeissuer.RFC2136).PreflightNames(t.Context(), []string{"*.example.test", "pre.example.test"}); err != nil {
			t.Fatalf("Preflight: %v", err)
		}
		noRecordLeft(t, "example.test", "pre.example.test")
	})

	t.Run("named stopped mid-order and restarted", func(t *testing.T) {
		// The CA's front stops named once the first order is created and
		// starts it again when the retry orders anew.
		var orders atomic.Int32
		env := bindEnv(t, ca, n, filepath.Join(t.TempDir(), "root"), n.env(nil), `name = "restart"`+"\n"+`domains = ["r.example.test", "*.r.example.test"]`)
		frontCA(t, ca, env, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if r.URL.Path != "/order-plz" {
				next.ServeHTTP(w, r)
				return
			}
			switch orders.Add(1) {
			case 1:
				next.ServeHTTP(w, r)
				n.stop()
			case 2:
				if err := n.start(); err != nil {
					t.Error(err)
				}
				next.ServeHTTP(w, r)
			default:
				next.ServeHTTP(w, r)
			}
		})
		_, log := env.mustRun(t, exitOK)
		if got := summaries(log); got["restart"] != "renewed" {
			t.Fatalf("summaries = %v\n%s", got, log)
		}
		if got := orders.Load(); got != 2 {
			t.Errorf("%d orders, want 2 (one failed while named was down, one after)", got)
		}
		noRecordLeft(t, "r.example.test")
	})

	t.Run("renewing process killed while it holds the record", func(t *testing.T) {
		// The CA's front holds the first challenge request (the value is
		// presented, the record lock held) and says so; the process is
		// then SIGKILLed. The next run takes the lock the kernel released
		// and leaves no record behind, the killed run's value included.
		bin := buildBinary(t)
		var held atomic.Bool
		reached := make(chan struct{}, 1)
		env := bindEnv(t, ca, n, filepath.Join(t.TempDir(), "root"), n.env(nil), `name = "killed"`+"\n"+`domains = ["k.example.test"]`)
		frontCA(t, ca, env, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if strings.HasPrefix(r.URL.Path, "/chalZ/") && held.CompareAndSwap(false, true) {
				io.Copy(io.Discard, r.Body)
				reached <- struct{}{}
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
		cmd := exec.Command(bin, "-config", env.config)
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-reached:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the challenge was never requested:\n%s", out.String())
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if v := n.txt(t, "_acme-challenge.k.example.test"); len(v) != 1 {
			t.Fatalf("the killed run's value: TXT = %v, want one value", v)
		}
		_, log := env.mustRun(t, exitOK)
		if got := summaries(log); got["killed"] != "renewed" {
			t.Fatalf("summaries = %v\n%s", got, log)
		}
		noRecordLeft(t, "k.example.test")
	})

	if t.Failed() {
		t.Logf("named's log:\n%s", n.out.String())
	}
}

// frontCA puts an HTTPS front before ca (a reverse proxy keeping the Host,
// from which Pebble builds its URLs) whose handler decides, request by
// request, what reaches the CA (next), and points env's configuration at it.
func frontCA(t *testing.T, ca *testacme.Server, env *testEnv, handle func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	t.Helper()
	target, err := url.Parse(ca.DirectoryURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host})
			r.Out.Host = r.In.Host
		},
		Transport: ca.HTTPClient().Transport,
	}
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handle(w, r, proxy) }))
	front.StartTLS()
	t.Cleanup(front.Close)
	pemPath := filepath.Join(t.TempDir(), "front.pem")
	if err := os.WriteFile(pemPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: front.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	cfgText := strings.NewReplacer(ca.DirectoryURL(), front.URL+"/dir", ca.CAFile(), pemPath).Replace(string(cfg))
	if err := os.WriteFile(env.config, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
}
