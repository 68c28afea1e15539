package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/lockfile"
)

func TestUsageErrors(t *testing.T) {
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	tests := []struct {
		name string
		args []string
		code int
		out  string // substring of stdout
		err  string // substring of stderr
	}{
		{"help", []string{"-help"}, exitOK, "Exit codes:", ""},
		{"version", []string{"-version"}, exitOK, "renew-certificates ", ""},
		{"unknown flag", []string{"-bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{"argument", []string{"-config", env.config, "renew"}, exitUsage, "", `unexpected argument "renew"`},
		{"two modes", []string{"-status", "-dry-run"}, exitUsage, "", "exclude each other"},
		{"force with status", []string{"-status", "-force", "all"}, exitUsage, "", "-force makes no sense with -status"},
		{"empty force", []string{"-force", ""}, exitUsage, "", "-force: want certificate names"},
		{"bad log format", []string{"-log-format", "xml"}, exitUsage, "", `-log-format "xml"`},
		{"bad log level", []string{"-log-level", "loud"}, exitUsage, "", `-log-level "loud"`},
		{"dry run with metrics", []string{"-dry-run", "-metrics-file", "/tmp/x.prom"}, exitUsage, "", "-dry-run writes nothing"},
		{"report-only without status", []string{"-report-only"}, exitUsage, "", "-report-only is for -status"},
		{"demo", []string{"-demo"}, exitUsage, "", "go run ./examples/renew-certificates -demo"},
		{"demo with root", []string{"-demo", "-root", t.TempDir()}, exitUsage, "", "go run ./examples/renew-certificates -demo"},
		{"missing config", []string{"-config", filepath.Join(t.TempDir(), "none.toml")}, exitUsage, "", "none.toml: cannot read configuration"},
		{"unknown certificate", []string{"-config", env.config, "-cert", "b"}, exitUsage, "", `-cert: no certificate named "b"`},
		{"unknown forced certificate", []string{"-config", env.config, "-force", "a,b"}, exitUsage, "", `-force: no certificate named "b"`},
		{"bad override", []string{"-config", env.config, "-server", "http://insecure.example/dir"}, exitUsage, "", "flag -server: server:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, context.Background(), tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Errorf("run %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q", tt.args, code, out, errOut, tt.code, tt.out, tt.err)
			}
		})
	}
	if _, err := os.Stat(env.root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a usage error created the storage root: %v", err)
	}
}

// checkLineage checks that NAME's served files are one whole generation
// (internal/served's Check) that chains to ca's root, and returns the leaf.
func checkLineage(t *testing.T, env *testEnv, name string) *x509.Certificate {
	t.Helper()
	snap, err := served.Check(filepath.Join(env.root, name))
	if err != nil {
		t.Fatalf("%s: served files: %v", name, err)
	}
	if err := snap.Verify(env.ca.RootPool()); err != nil {
		t.Errorf("%s: chain does not verify: %v", name, err)
	}
	return snap.Leaf
}

// summaries counts the per-certificate summary records in a text log.
func summaries(log string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, " msg=certificate ") {
			continue
		}
		var name, outcome string
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "name="); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(f, "outcome="); ok {
				outcome = v
			}
		}
		if _, dup := out[name]; dup {
			out[name] = "DUPLICATE"
			continue
		}
		out[name] = outcome
	}
	return out
}

func TestRunHTTP01Listener(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "",
		`name = "a"`+"\n"+`domains = ["a.example.test", "www.a.example.test"]`,
		`name = "b"`+"\n"+`domains = ["b.example.test"]`+"\n"+`key_type = "rsa2048"`)
	_, log := env.mustRun(t, exitOK)
	if got := summaries(log); len(got) != 2 || got["a"] != "renewed" || got["b"] != "renewed" {
		t.Errorf("summary records = %v\n%s", got, log)
	}
	leaf := checkLineage(t, env, "a")
	if got := strings.Join(leaf.DNSNames, ","); got != "a.example.test,www.a.example.test" {
		t.Errorf("names = %s", got)
	}
	if _, ok := checkLineage(t, env, "b").PublicKey.(interface{ Size() int }); !ok {
		t.Errorf("b: want an RSA key")
	}
	orders := ca.Stats().Orders

	// Nothing is due now: exit 0, no order, one summary record each at
	// Debug, and at Info only the run's summary.
	_, log = env.mustRun(t, exitOK)
	if got := summaries(log); len(got) != 0 {
		t.Errorf("second run, Info: certificate records %v, want none (not due: Debug)", got)
	}
	if !strings.Contains(log, "level=INFO msg=run certificates=2 not_due=2 ") {
		t.Errorf("second run, Info: no run summary with not_due=2:\n%s", log)
	}
	_, log = env.mustRun(t, exitOK, "-log-level", "debug")
	if got := summaries(log); got["a"] != "not_due" || got["b"] != "not_due" {
		t.Errorf("second run summaries = %v", got)
	}
	if n := ca.Stats().Orders; n != orders {
		t.Errorf("a run with nothing due placed %d orders", n-orders)
	}

	// -force with -cert renews exactly one.
	_, log = env.mustRun(t, exitOK, "-force", "a", "-cert", "a")
	if got := summaries(log); len(got) != 1 || got["a"] != "renewed" {
		t.Errorf("forced run summaries = %v", got)
	}
	if again := checkLineage(t, env, "a"); again.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Errorf("forced renewal kept the serial")
	}
}

func TestRunWebroot(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	webroot := t.TempDir()
	// The "web server" already running on the port the CA validates.
	ln, err := net.Listen("tcp", ca.HTTP01Addr())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(webroot)), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	env := newEnv(t, ca, `type = "http-01"`+"\n"+`webroot = "`+webroot+`"`, `name = "w"`+"\n"+`domains = ["w.example.test"]`)
	env.mustRun(t, exitOK)
	checkLineage(t, env, "w")
	ents, _ := os.ReadDir(filepath.Join(webroot, ".well-known", "acme-challenge"))
	if len(ents) != 0 {
		t.Errorf("challenge files left in the webroot: %v", ents)
	}
}

// tree snapshots a directory: every entry's type, mode, size, time and
// link target. A missing directory gives nil.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		target, _ := os.Readlink(p)
		mt := fi.ModTime().UnixNano()
		out[p] = fmt.Sprintf("%v %q %d %d", fi.Mode(), target, fi.Size(), mt)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalTrees(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`, `name = "b"`+"\n"+`domains = ["b.example.test"]`)

	out, _ := env.mustRun(t, exitOK, "-dry-run")
	for _, want := range []string{"a: would renew now: no certificate installed", "b: would renew now: no certificate installed"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(env.root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dry run created the storage root (%v)", err)
	}

	env.mustRun(t, exitOK)
	before, orders := tree(t, env.root), ca.Stats().Orders
	out, _ = env.mustRun(t, exitOK, "-dry-run")
	if !strings.Contains(out, "a: not due: would renew at ") {
		t.Errorf("dry run output:\n%s", out)
	}
	out, _ = env.mustRun(t, exitOK, "-dry-run", "-force", "all")
	if !strings.Contains(out, "a: would renew now: forced") || !strings.Contains(out, "b: would renew now: forced") {
		t.Errorf("forced dry run output:\n%s", out)
	}
	if after := tree(t, env.root); !equalTrees(before, after) {
		t.Errorf("dry run changed the storage root:\nbefore %v\nafter  %v", before, after)
	}
	if n := ca.Stats().Orders; n != orders {
		t.Errorf("dry run placed %d orders", n-orders)
	}
}

func TestStatusMode(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`, `name = "b"`+"\n"+`domains = ["b.example.test"]`)
	env.mustRun(t, exitOK, "-cert", "a")
	out, _ := env.mustRun(t, exitOK, "-status")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("status output:\n%s", out)
	}
	for _, col := range []string{"NAME", "DOMAINS", "NOT AFTER", "RENEW AT", "WHY", "LAST OUTCOME", "FAILURES", "NOT BEFORE", "HOOKS PENDING"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %s: %s", col, lines[0])
		}
	}
	if f := strings.Fields(lines[1]); f[0] != "a" || f[1] != "a.example.test" || !strings.Contains(lines[1], "(in 89d)") || !strings.Contains(lines[1], "renewed just now") {
		t.Errorf("row a: %s", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != "b" || f[2] != "-" || f[3] != "now" || !strings.Contains(lines[2], "no certificate installed") {
		t.Errorf("row b: %s", lines[2])
	}
}

func TestMetricsFile(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`, `name = "b"`+"\n"+`domains = ["b.example.test"]`)
	prom := filepath.Join(t.TempDir(), "renewkit.prom")
	env.mustRun(t, exitOK, "-metrics-file", prom, "-cert", "a")
	b, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`renewkit_certificate_not_after_timestamp_seconds{name="a"}`,
		`renewkit_renewal_runs_total{name="a",outcome="renewed"} 1`,
		`renewkit_certificate_info{domains="b.example.test",name="b"`, // not run, primed from Status
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s:\n%s", want, b)
		}
	}
	// -status writes them too.
	prom2 := filepath.Join(t.TempDir(), "status.prom")
	env.mustRun(t, exitOK, "-status", "-metrics-file", prom2)
	if b, err := os.ReadFile(prom2); err != nil || !strings.Contains(string(b), `renewkit_certificate_not_after_timestamp_seconds{name="a"}`) {
		t.Errorf("status metrics: %v\n%s", err, b)
	}
	// An unwritable metrics path makes the run fail.
	code, _, log := env.run(t, context.Background(), "-metrics-file", filepath.Join(t.TempDir(), "missing", "x.prom"))
	if code != exitFailed || !strings.Contains(log, "could not write the metrics file") {
		t.Errorf("unwritable metrics file: exit %d\n%s", code, log)
	}
}

func TestFailureAndBackoff(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	// The built-in listener on another port than the one the CA validates:
	// validation fails (connection refused).
	env := newEnv(t, ca, `type = "http-01"`+"\n"+`listen = "127.0.0.1:0"`, `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	_, log := env.mustRun(t, exitFailed)
	if got := summaries(log); got["a"] != "failed" {
		t.Errorf("summaries = %v\n%s", got, log)
	}
	orders := ca.Stats().Orders
	_, log = env.mustRun(t, exitFailed)
	if got := summaries(log); got["a"] != "backing_off" {
		t.Errorf("second run summaries = %v\n%s", got, log)
	}
	if n := ca.Stats().Orders; n != orders {
		t.Errorf("a run backing off placed %d orders", n-orders)
	}
	// Backing off says why, until when, and how to retry now.
	for _, want := range []string{"level=WARN", "backing off after earlier failures until", "last error:", "-force a"} {
		if !strings.Contains(log, want) {
			t.Errorf("a run backing off does not say %q:\n%s", want, log)
		}
	}
	// -status is a check: a first issuance that failed and is backing
	// off needs attention (exit 1), unless -report-only.
	out, _ := env.mustRun(t, exitFailed, "-status")
	if !strings.Contains(out, "a: last error:") || !strings.Contains(out, "failed") ||
		!strings.Contains(out, "a: needs attention: its first issuance failed") || !strings.Contains(out, "a: needs attention: backing off") {
		t.Errorf("status after failures:\n%s", out)
	}
	env.mustRun(t, exitOK, "-status", "-report-only")
	out, _ = env.mustRun(t, exitOK, "-dry-run")
	if !strings.Contains(out, "last error:") || !strings.Contains(out, "to retry now: renew-certificates -config "+env.config+" -force a") {
		t.Errorf("dry run while backing off:\n%s", out)
	}
	// Fixing the configuration ends the backoff: the next run orders.
	cfg, err := os.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(cfg), `listen = "127.0.0.1:0"`, "listen = "+strconv.Quote(ca.HTTP01Addr()), 1)
	if err := os.WriteFile(env.config, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = env.mustRun(t, exitOK, "-dry-run")
	if !strings.Contains(out, "a: would renew now") || !strings.Contains(out, "configuration changed") {
		t.Errorf("dry run after the fix:\n%s", out)
	}
	if _, log = env.mustRun(t, exitOK); summaries(log)["a"] != "renewed" {
		t.Errorf("the run after the fix:\n%s", log)
	}
}

// TestLocalFailureStillWritesMetrics: a problem of this machine (here an
// account directory that cannot exist) fails the due certificate with its
// fix, without an order, and the metrics file is still written.
func TestLocalFailureStillWritesMetrics(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	prom := filepath.Join(t.TempDir(), "renewkit.prom")
	code, _, log := env.run(t, context.Background(), "-account-dir", filepath.Join(file, "acct"), "-metrics-file", prom)
	if code != exitFailed || !strings.Contains(log, "account directory") || !strings.Contains(log, "fault=local") || !strings.Contains(log, "not a directory") {
		t.Errorf("exit %d, want %d with the account directory's problem:\n%s", code, exitFailed, log)
	}
	if strings.Contains(log, "AccountDir") {
		t.Errorf("a Go field name reached the CLI's user:\n%s", log)
	}
	if n := ca.Stats().Orders; n != 0 {
		t.Errorf("%d orders for a local problem", n)
	}
	if b, err := os.ReadFile(prom); err != nil || !strings.Contains(string(b), `renewkit_renewal_runs_total{name="a",outcome="failed"} 1`) {
		t.Errorf("metrics file: %v\n%s", err, b)
	}
	// A metrics file node_exporter would ignore is worth a warning.
	_, _, log = env.run(t, context.Background(), "-account-dir", filepath.Join(file, "acct"), "-metrics-file", filepath.Join(t.TempDir(), "renewkit.txt"))
	if !strings.Contains(log, "end in .prom") {
		t.Errorf("no warning for a metrics file without .prom:\n%s", log)
	}
}

func TestLoggerFormats(t *testing.T) {
	var b strings.Builder
	newLogger(&b, "json", slog.LevelInfo).Info("x", "duration", 1500*time.Millisecond, "error", errors.Join(errors.New("one"), errors.New("two")))
	var rec map[string]any
	if err := json.Unmarshal([]byte(b.String()), &rec); err != nil {
		t.Fatal(err)
	}
	if d, ok := rec["duration"].(float64); !ok || d != 1.5 {
		t.Errorf("JSON duration %v (%T), want 1.5 seconds", rec["duration"], rec["duration"])
	}
	b.Reset()
	newLogger(&b, "text", slog.LevelInfo).Info("x", "duration", 1500*time.Millisecond, "error", errors.Join(errors.New("one"), errors.New("two")), "s", "a\nb")
	line := b.String()
	if strings.Contains(line, `\n`) || !strings.Contains(line, "one; two") || !strings.Contains(line, "duration=1.5s") || !strings.Contains(line, "s=\"a; b\"") {
		t.Errorf("text record %q", line)
	}
}

func TestHookFailureExits1(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	marker := filepath.Join(t.TempDir(), "ok")
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`+"\n"+`hooks = [["false"], ["touch", "`+marker+`"]]`)
	_, log := env.mustRun(t, exitFailed)
	if got := summaries(log); got["a"] != "renewed" {
		t.Errorf("summaries = %v", got)
	}
	checkLineage(t, env, "a")
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the second hook did not run: %v", err)
	}
	// The failing hook stays pending: the next run retries it and fails again.
	_, log = env.mustRun(t, exitFailed)
	if !strings.Contains(log, "hooks_pending=1") {
		t.Errorf("second run:\n%s", log)
	}
	out, _ := env.mustRun(t, exitFailed, "-status")
	if !strings.Contains(out, `a: deploy hook "false" pending for generation 1`) || !strings.Contains(out, "a: needs attention: 1 deploy hook runs pending") {
		t.Errorf("status:\n%s", out)
	}
	env.mustRun(t, exitOK, "-status", "-report-only")
}

func TestLockedIsFine(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	if err := os.MkdirAll(filepath.Join(env.root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := lockfile.TryLock(filepath.Join(env.root, "a", ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	_, log := env.mustRun(t, exitOK)
	if got := summaries(log); got["a"] != "locked" {
		t.Errorf("summaries = %v\n%s", got, log)
	}
	if n := ca.Stats().Orders; n != 0 {
		t.Errorf("%d orders while another run holds the lock", n)
	}
}

func TestInterruptedBeforeStart(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code, _, log := env.run(t, ctx); code != exitInterrupted {
		t.Errorf("exit %d, want %d\n%s", code, exitInterrupted, log)
	}
}

func TestJSONLogs(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`, `name = "b"`+"\n"+`domains = ["b.example.test"]`)
	_, log := env.mustRun(t, exitOK, "-log-format", "json")
	count := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		if rec["msg"] == "certificate" {
			count[rec["name"].(string)]++
			if rec["outcome"] != "renewed" || rec["not_after"] == nil {
				t.Errorf("summary record %v", rec)
			}
		}
	}
	if count["a"] != 1 || count["b"] != 1 || len(count) != 2 {
		t.Errorf("summary records per certificate: %v", count)
	}
}

func TestRunTLSALPN01(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, `type = "tls-alpn-01"`+"\n"+`listen = "`+ca.TLSALPN01Addr()+`"`, `name = "t"`+"\n"+`domains = ["t.example.test"]`)
	env.mustRun(t, exitOK)
	checkLineage(t, env, "t")
}

func TestExternalAccountBinding(t *testing.T) {
	t.Parallel()
	ca := testacme.New(t, testacme.Options{RequireEAB: true, Profiles: map[string]time.Duration{"shortlived": 0}})
	kid, hmac := ca.EABKey()
	hmacFile := filepath.Join(t.TempDir(), "eab.hmac")
	if err := os.WriteFile(hmacFile, []byte(hmac+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, ca, "", `name = "e"`+"\n"+`domains = ["e.example.test"]`)
	cfg, err := os.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	// Without the binding the CA refuses the account.
	if code, _, log := env.run(t, context.Background()); code != exitFailed || !strings.Contains(log, "External Account Binding") {
		t.Errorf("without EAB: exit %d\n%s", code, log)
	}
	eab := fmt.Sprintf("\n[eab]\nkey_id = %q\nhmac_file = %q\n", kid, hmacFile)
	if err := os.WriteFile(env.config, append(cfg, eab...), 0o644); err != nil {
		t.Fatal(err)
	}
	env.mustRun(t, exitOK, "-force", "e") // -force: past the backoff of the failure above
	checkLineage(t, env, "e")
	// A missing HMAC file is a configuration problem.
	os.Remove(hmacFile)
	if code, _, log := env.run(t, context.Background(), "-force", "e"); code != exitUsage || !strings.Contains(log, "hmac_file") {
		t.Errorf("missing hmac file: exit %d\n%s", code, log)
	}
}

// TestDryRunWebrootSelfCheck: -dry-run fetches a probe written under a
// webroot certificate's webroot from http://NAME/ on port 80, as the CA
// will; a name whose port 80 does not serve the webroot (here 127.0.0.1,
// loopback only: nothing there serves this test's temporary webroot,
// whether the port is closed or another server answers) makes it exit 1
// naming the webroot, the URL and the fix. Wildcards are not fetched.
func TestDryRunWebrootSelfCheck(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	webroot := t.TempDir()
	env := newEnv(t, ca, `type = "http-01"`+"\n"+`webroot = "`+webroot+`"`, `name = "w"`+"\n"+`domains = ["127.0.0.1"]`)
	out, _ := env.mustRun(t, exitFailed, "-dry-run")
	for _, want := range []string{"w: problem: ", "webroot " + webroot + " self-check of http://127.0.0.1/.well-known/acme-challenge/renewkit-selfcheck-",
		"serve " + webroot + " at / on port 80 for 127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("-dry-run output lacks %q:\n%s", want, out)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(webroot, ".well-known", "acme-challenge")); len(ents) != 0 {
		t.Errorf("probe files left in the webroot: %v", ents)
	}
}
