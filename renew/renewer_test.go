package renew

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/hooks"

	"github.com/renewkit/renewkit/internal/testchild"

	servedfiles "github.com/renewkit/renewkit/internal/served"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a Renewer over a fresh root with a fake CA and a fake clock.
type env struct {
	t    *testing.T
	root string
	ca   *fakeCA
	r    *Renewer
	clk  *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, root: filepath.Join(base, "root"), clk: &clock{t: time.Now()}}
	e.ca = newFakeCA(t, filepath.Join(base, "ca"))
	e.ca.now = e.clk.Now
	// Retries without waits: the fake CA's faults need no real time to pass.
	e.r = &Renewer{Root: e.root, Issuer: e.ca, Now: e.clk.Now, Roots: e.ca.roots(), Retry: backoff.Policy{Initial: -1}}
	return e
}

func (e *env) run(c Certificate) Result {
	e.t.Helper()
	res := e.r.Run(context.Background(), c)
	if len(res) != 1 {
		e.t.Fatalf("Run returned %d results", len(res))
	}
	return res[0]
}

// served reads the stable links of a lineage and checks they are one whole
// generation (internal/served's Check: key matching certificate, fullchain
// and combined consistent).
func served(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	snap, err := servedfiles.Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	return snap.Leaf
}

func cert(name string, hs ...hooks.Hook) Certificate {
	return Certificate{Name: name, Domains: []string{name + ".example.test", "www." + name + ".example.test"}, Hooks: hs}
}

// counter is a hook that counts its runs and records the serials it saw.
type counter struct {
	name    string
	n       atomic.Int32
	mu      sync.Mutex
	serials []string
	fail    atomic.Bool
}

func (c *counter) Name() string { return c.name }
func (c *counter) Run(ctx context.Context, ev hooks.Event) error {
	if c.fail.Load() {
		return errors.New("reload refused")
	}
	c.n.Add(1)
	c.mu.Lock()
	c.serials = append(c.serials, ev.Serial)
	c.mu.Unlock()
	return nil
}

func TestFirstIssuanceThenNoOp(t *testing.T) {
	e := newEnv(t)
	h := &counter{name: "reload"}
	c := cert("site", h)
	res := e.run(c)
	if res.Outcome != Renewed || res.Err != nil || res.Issued != 1 {
		t.Fatalf("first run: %+v", res)
	}
	leaf := served(t, filepath.Join(e.root, "site"))
	if leaf.DNSNames[0] != "site.example.test" {
		t.Errorf("served names %v", leaf.DNSNames)
	}
	if h.n.Load() != 1 || res.HooksPending != 0 {
		t.Errorf("hook ran %d times, %d pending", h.n.Load(), res.HooksPending)
	}
	if res.Generation != 1 || res.NotAfter.IsZero() || res.RenewAt.IsZero() {
		t.Errorf("result fields: %+v", res)
	}
	// Immediately again: nothing to do, no issuance, no hook.
	res = e.run(c)
	if res.Outcome != NotDue || res.Err != nil {
		t.Fatalf("second run: %+v", res)
	}
	if got := e.ca.issues.Load(); got != 1 {
		t.Errorf("issuances = %d, want 1", got)
	}
	if h.n.Load() != 1 {
		t.Errorf("hook ran again on a no-op")
	}
	// The key is 0600.
	fi, err := os.Stat(filepath.Join(e.root, "site", "privkey.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("privkey.pem mode %v, %v", fi.Mode(), err)
	}
}

func TestForcedRenewal(t *testing.T) {
	e := newEnv(t)
	c := cert("site")
	e.run(c)
	first := served(t, filepath.Join(e.root, "site"))
	c.Force = true
	res := e.run(c)
	if res.Outcome != Renewed || res.Generation != 2 {
		t.Fatalf("forced: %+v", res)
	}
	if second := served(t, filepath.Join(e.root, "site")); second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Error("serial did not change")
	}
}

func TestShortLivedRenewsByFraction(t *testing.T) {
	e := newEnv(t)
	e.ca.lifetime = 6 * 24 * time.Hour
	c := cert("short")
	e.run(c)
	// 3.9 days in: more than one third (2 days) left, not due.
	e.clk.Add(3*24*time.Hour + 21*time.Hour)
	if res := e.run(c); res.Outcome != NotDue {
		t.Fatalf("at 3.9 days: %+v", res)
	}
	// 4.1 days in: less than one third left, due.
	e.clk.Add(5 * time.Hour)
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("at 4.1 days: %+v", res)
	}
}

func TestARIWindowMovedRenewsEarly(t *testing.T) {
	e := newEnv(t)
	a := ariCA{e.ca}
	e.r.Issuer = a
	c := cert("ari")
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("first: %+v", res)
	}
	// A window in the future: not due.
	now := e.clk.Now()
	e.ca.mu.Lock()
	e.ca.window = &expiry.Window{Start: now.Add(50 * 24 * time.Hour), End: now.Add(52 * 24 * time.Hour)}
	e.ca.mu.Unlock()
	e.clk.Add(time.Minute)
	res := e.run(c)
	if res.Outcome != NotDue || res.RenewAt.Before(now.Add(50*24*time.Hour)) {
		t.Fatalf("future window: %+v", res)
	}
	// The CA moves the window into the past (e.g. a revocation): due at the
	// next fetch, long before the policy would say so.
	e.ca.mu.Lock()
	e.ca.window = &expiry.Window{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)}
	e.ca.mu.Unlock()
	e.clk.Add(7 * time.Hour) // past the ARI refetch interval
	res = e.run(c)
	if res.Outcome != Renewed {
		t.Fatalf("window in the past: %+v", res)
	}
}

func TestTransientFaultsRecoveredWithinRun(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	e.r.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	e.ca.failNext(backoff.Transient(errors.New("503 from CA")), backoff.Transient(errors.New("connection reset")))
	res := e.run(cert("flaky"))
	if res.Outcome != Renewed || res.Attempts != 3 {
		t.Fatalf("%+v", res)
	}
	if n := strings.Count(logs.String(), "issuance attempt failed"); n != 2 {
		t.Errorf("%d retries logged, want 2:\n%s", n, logs.String())
	}
}

func TestPermanentErrorPersistsNotBefore(t *testing.T) {
	e := newEnv(t)
	e.ca.failNext(backoff.Permanent(errors.New("urn:ietf:params:acme:error:rejectedIdentifier: not allowed")))
	c := cert("bad")
	res := e.run(c)
	if res.Outcome != Failed || res.Attempts != 1 || !strings.Contains(res.Err.Error(), "rejectedIdentifier") {
		t.Fatalf("%+v", res)
	}
	if res.Failures != 1 || !res.RetryNotBefore.After(e.clk.Now()) {
		t.Fatalf("backoff not persisted: %+v", res)
	}
	// The next run (a timer firing soon after) does not contact the CA.
	e.clk.Add(time.Minute)
	before := e.ca.issues.Load()
	res = e.run(c)
	if res.Outcome != BackingOff || e.ca.issues.Load() != before {
		t.Fatalf("second run: %+v", res)
	}
	// After the not-before, it tries again and succeeds.
	e.clk.Add(res.RetryNotBefore.Sub(e.clk.Now()) + time.Second)
	if res = e.run(c); res.Outcome != Renewed || res.Failures != 0 {
		t.Fatalf("third run: %+v", res)
	}
}

func TestRetryAfterHonouredAcrossRuns(t *testing.T) {
	e := newEnv(t)
	e.ca.failNext(backoff.RateLimited(errors.New("too many certificates"), 3*time.Hour))
	c := cert("limited")
	res := e.run(c)
	if res.Outcome != Failed {
		t.Fatalf("%+v", res)
	}
	if want := e.clk.Now().Add(3 * time.Hour); res.RetryNotBefore.Before(want) {
		t.Fatalf("retry not before %v, want ≥ %v", res.RetryNotBefore, want)
	}
	e.clk.Add(2 * time.Hour)
	if res = e.run(c); res.Outcome != BackingOff {
		t.Fatalf("within Retry-After: %+v", res)
	}
}

func TestHookFailureStaysPending(t *testing.T) {
	e := newEnv(t)
	h := &counter{name: "reload"}
	h.fail.Store(true)
	c := cert("hooked", h)
	res := e.run(c)
	if res.Outcome != Renewed || res.HookErr == nil || res.HooksPending != 1 {
		t.Fatalf("%+v", res)
	}
	served(t, filepath.Join(e.root, "hooked")) // the install itself is not blocked
	h.fail.Store(false)
	res = e.run(c)
	if res.Outcome != NotDue || res.HooksPending != 0 || h.n.Load() != 1 {
		t.Fatalf("replay: %+v, hook ran %d", res, h.n.Load())
	}
	if e.ca.issues.Load() != 1 {
		t.Errorf("issuances %d", e.ca.issues.Load())
	}
}

func TestConcurrentGoroutinesOneIssuance(t *testing.T) {
	e := newEnv(t)
	e.ca.block = make(chan struct{})
	c := cert("busy")
	var wg sync.WaitGroup
	results := make([]Result, 10)
	for i := range results {
		wg.Go(func() { results[i] = e.run(c) })
	}
	// Release the one issuance in progress; the others found the lock
	// held (or, if they started late, nothing due).
	select {
	case e.ca.block <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatal("no issuance started")
	}
	wg.Wait()
	renewed := 0
	for _, r := range results {
		switch r.Outcome {
		case Renewed:
			renewed++
		case Locked, NotDue:
		default:
			t.Errorf("unexpected %+v", r)
		}
	}
	if renewed != 1 || e.ca.issues.Load() != 1 || e.ca.maxConc.Load() != 1 {
		t.Fatalf("renewed %d, issues %d, max concurrent %d", renewed, e.ca.issues.Load(), e.ca.maxConc.Load())
	}
}

func TestCorruptStateRebuilt(t *testing.T) {
	for _, content := range []string{"", "{", "garbage\x00", `{"current": {"seq": 1}}`, "[]"} {
		t.Run(fmt.Sprintf("%q", content), func(t *testing.T) {
			e := newEnv(t)
			c := cert("st")
			e.run(c)
			if err := os.WriteFile(filepath.Join(e.root, "st", "state.json"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			res := e.run(c)
			if res.Outcome != NotDue || res.Generation != 1 {
				t.Fatalf("%+v", res)
			}
			if _, err := loadState(filepath.Join(e.root, "st")); err != nil {
				t.Fatalf("state not rebuilt: %v", err)
			}
		})
	}
}

func TestTruncatedCertMakesDue(t *testing.T) {
	e := newEnv(t)
	c := cert("trunc")
	e.run(c)
	p := filepath.Join(e.root, "trunc", "current", "cert.pem")
	os.Chmod(filepath.Dir(p), 0o755)
	if err := os.Truncate(p, 10); err != nil {
		t.Fatal(err)
	}
	res := e.run(c)
	if res.Outcome != Renewed || res.Generation != 2 {
		t.Fatalf("%+v", res)
	}
	served(t, filepath.Join(e.root, "trunc"))
}

func TestCancelledIsInterrupted(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := e.r.Run(ctx, cert("x"))[0]
	if res.Outcome != Interrupted || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("%+v", res)
	}
	if _, err := os.Lstat(filepath.Join(e.root, "x", "current")); err == nil {
		t.Error("something was installed")
	}
}

func TestDuplicateNameFails(t *testing.T) {
	e := newEnv(t)
	res := e.r.Run(context.Background(), cert("a"), cert("a"))
	if res[0].Outcome != Renewed || res[1].Outcome != Failed {
		t.Fatalf("%v", res)
	}
}

func TestCertSourceHotReload(t *testing.T) {
	e := newEnv(t)
	c := cert("hot")
	e.run(c)
	src, err := NewCertSource(time.Hour, filepath.Join(e.root, "hot"))
	if err != nil {
		t.Fatal(err)
	}
	c.Hooks = []hooks.Hook{src.Hook()}
	hello := &tls.ClientHelloInfo{ServerName: "hot.example.test"}
	a, err := src.GetCertificate(hello)
	if err != nil {
		t.Fatal(err)
	}
	c.Force = true
	if res := e.run(c); res.Outcome != Renewed || res.HookErr != nil {
		t.Fatalf("%+v", res)
	}
	b, _ := src.GetCertificate(hello)
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Fatal("CertSource still serves the old certificate after the hook")
	}
}

// Crash tests: a child process runs the Renewer and SIGKILLs itself at a
// chosen instant; the parent checks the served files and reruns.

const childEnv = "RENEW_TEST_CHILD"

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper process")
	}
	root, caDir, marker := os.Getenv("ROOT"), os.Getenv("CADIR"), os.Getenv("MARKER")
	ca, err := loadFakeCA(caDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	kill := func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	h := hooks.Func("marker", func(ctx context.Context, ev hooks.Event) error {
		if mode == "kill-in-hook" {
			kill()
		}
		f, err := os.OpenFile(marker, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintln(f, ev.Serial)
		return err
	})
	switch mode {
	case "kill-after-finalize":
		ca.afterFinalize = kill
	case "block-after-journal":
		ca.afterJournal = func() { fmt.Println("journaled") }
		ca.block = make(chan struct{}) // never released: the parent kills us
	}
	r := &Renewer{Root: root, Issuer: ca, Roots: ca.roots()}
	c := Certificate{Name: "crash", Domains: []string{"crash.example.test"}, Hooks: []hooks.Hook{h}, Force: os.Getenv("FORCE") != ""}
	res := r.Run(context.Background(), c)[0]
	fmt.Println(res.Outcome)
	if !res.Outcome.OK() {
		fmt.Fprintln(os.Stderr, res.Err)
		os.Exit(1)
	}
	os.Exit(0)
}

func child(t *testing.T, mode, root, caDir, marker string, force bool) *exec.Cmd {
	cmd := testchild.Command("TestHelperProcess", childEnv+"="+mode, "ROOT="+root, "CADIR="+caDir, "MARKER="+marker)
	if force {
		cmd.Env = append(cmd.Env, "FORCE=1")
	}
	return cmd
}

func hookSerials(t *testing.T, marker string) []string {
	b, _ := os.ReadFile(marker)
	return strings.Fields(string(b))
}

func TestKilledAfterFinalizeInstallsWithoutReordering(t *testing.T) {
	base := t.TempDir()
	root, caDir, marker := filepath.Join(base, "root"), filepath.Join(base, "ca"), filepath.Join(base, "hooks.log")
	if out, err := child(t, "normal", root, caDir, marker, false).CombinedOutput(); err != nil {
		t.Fatalf("first issuance: %v\n%s", err, out)
	}
	before := served(t, filepath.Join(root, "crash"))
	err := child(t, "kill-after-finalize", root, caDir, marker, true).Run()
	if !testchild.Killed(err) {
		t.Fatalf("child was not killed: %v", err)
	}
	ca := newFakeCA(t, caDir)
	if n := ca.issuedCount(); n != 2 {
		t.Fatalf("issued %d, want 2 (first + the killed renewal)", n)
	}
	// Still the old generation, whole.
	if s := served(t, filepath.Join(root, "crash")); s.SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Fatal("served certificate changed before the install")
	}
	// The next normal run installs the issued certificate: no new order.
	out, err := child(t, "normal", root, caDir, marker, false).CombinedOutput()
	if err != nil || !strings.Contains(string(out), string(Recovered)) {
		t.Fatalf("recovery run: %v\n%s", err, out)
	}
	if n := ca.issuedCount(); n != 2 {
		t.Fatalf("issued %d after recovery, want still 2", n)
	}
	after := served(t, filepath.Join(root, "crash"))
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("recovered certificate not installed")
	}
	if got := hookSerials(t, marker); len(got) != 2 || got[1] != fmt.Sprintf("%x", after.SerialNumber) {
		t.Fatalf("hook serials %v", got)
	}
	if _, err := os.Stat(filepath.Join(root, "crash", "pending.key")); !os.IsNotExist(err) {
		t.Error("pending key left behind")
	}
}

// A run killed after it journaled its order but before the finalize left
// leaves a ready order; the next run finalizes that order with the
// journaled key and installs its certificate: one order for the renewal,
// not a second one (and a forced renewal is not lost).
func TestKilledBeforeFinalizeFinishesTheOrder(t *testing.T) {
	base := t.TempDir()
	root, caDir, marker := filepath.Join(base, "root"), filepath.Join(base, "ca"), filepath.Join(base, "hooks.log")
	if out, err := child(t, "normal", root, caDir, marker, false).CombinedOutput(); err != nil {
		t.Fatalf("first issuance: %v\n%s", err, out)
	}
	before := served(t, filepath.Join(root, "crash"))
	c := testchild.Start(t, "TestHelperProcess", childEnv+"=block-after-journal", "ROOT="+root, "CADIR="+caDir, "MARKER="+marker, "FORCE=1")
	if got := c.Line(t); got != "journaled" {
		t.Fatalf("child said %q, want journaled", got)
	}
	c.Kill(t)
	ca := newFakeCA(t, caDir)
	if n := ca.issuedCount(); n != 1 {
		t.Fatalf("issued %d before the rerun, want 1 (the killed run never finalized)", n)
	}
	pending, err := os.ReadFile(filepath.Join(root, "crash", "pending.key"))
	if err != nil {
		t.Fatalf("the killed run left no order journal: %v", err)
	}
	o, err := decodePending(pending)
	if err != nil {
		t.Fatal(err)
	}
	out, err := child(t, "normal", root, caDir, marker, false).CombinedOutput()
	if err != nil || !strings.Contains(string(out), string(Recovered)) {
		t.Fatalf("recovery run: %v\n%s", err, out)
	}
	orders, _ := filepath.Glob(filepath.Join(caDir, "orders", "*.ready"))
	if n := ca.issuedCount(); n != 2 || len(orders) != 2 {
		t.Fatalf("issued %d in %d orders after recovery, want 2 in 2 (the killed run's order finished, none placed anew)", n, len(orders))
	}
	after := served(t, filepath.Join(root, "crash"))
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("the killed run's order was not installed")
	}
	_, keyPEM := servedPair(t, filepath.Join(root, "crash"))
	if k, err := parseKey(keyPEM); err != nil || !sameKey(o.key, k) {
		t.Errorf("the served key is not the one journaled with the order (%v)", err)
	}
	if got := hookSerials(t, marker); len(got) != 2 || got[1] != fmt.Sprintf("%x", after.SerialNumber) {
		t.Fatalf("hook serials %v", got)
	}
	if _, err := os.Stat(filepath.Join(root, "crash", "pending.key")); !os.IsNotExist(err) {
		t.Error("pending key left behind")
	}
}

func TestKilledBeforeHookReplaysHook(t *testing.T) {
	base := t.TempDir()
	root, caDir, marker := filepath.Join(base, "root"), filepath.Join(base, "ca"), filepath.Join(base, "hooks.log")
	err := child(t, "kill-in-hook", root, caDir, marker, false).Run()
	if !testchild.Killed(err) {
		t.Fatalf("child was not killed: %v", err)
	}
	leaf := served(t, filepath.Join(root, "crash")) // swapped before the hook
	if got := hookSerials(t, marker); len(got) != 0 {
		t.Fatalf("hook ran: %v", got)
	}
	out, err := child(t, "normal", root, caDir, marker, false).CombinedOutput()
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	if got := hookSerials(t, marker); len(got) != 1 || got[0] != fmt.Sprintf("%x", leaf.SerialNumber) {
		t.Fatalf("hook serials %v, want the installed one once", got)
	}
	if n := newFakeCA(t, caDir).issuedCount(); n != 1 {
		t.Fatalf("issued %d", n)
	}
}

func TestFiveProcessesOneIssuance(t *testing.T) {
	base := t.TempDir()
	root, caDir, marker := filepath.Join(base, "root"), filepath.Join(base, "ca"), filepath.Join(base, "hooks.log")
	newFakeCA(t, caDir) // create the CA key before the race
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for range 5 {
		c := child(t, "normal", root, caDir, marker, false)
		var b strings.Builder
		c.Stdout, c.Stderr = &b, &b
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, c), append(outs, &b)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	if n := newFakeCA(t, caDir).issuedCount(); n != 1 {
		t.Fatalf("issued %d, want 1", n)
	}
	served(t, filepath.Join(root, "crash"))
}

// Regression: a CA whose clock runs a second ahead issued a certificate
// valid from a moment in the future, and the chain check refused it.
func TestVerifyAllowsSmallClockSkew(t *testing.T) {
	e := newEnv(t)
	e.ca.now = func() time.Time { return e.clk.Now().Add(2*time.Minute + time.Minute) } // NotBefore = CA now - 1 min
	if res := e.run(cert("skew")); res.Outcome != Renewed {
		t.Fatalf("%+v", res)
	}
}

// A state.json written by a newer renewkit (after a downgrade) is not
// corrupt: the run fails and leaves it alone rather than losing its hook
// journal.
func TestNewerStateNotOverwritten(t *testing.T) {
	e := newEnv(t)
	c := cert("st")
	e.run(c)
	p := filepath.Join(e.root, "st", "state.json")
	newer := []byte(`{"version": 99, "hooks": {"entries": [{"generation": 1}]}}`)
	if err := os.WriteFile(p, newer, 0o644); err != nil {
		t.Fatal(err)
	}
	res := e.run(c)
	if res.Outcome != Failed || !strings.Contains(res.Err.Error(), "newer renewkit") {
		t.Fatalf("%+v", res)
	}
	if b, _ := os.ReadFile(p); string(b) != string(newer) {
		t.Fatal("state.json was overwritten")
	}
	served(t, filepath.Join(e.root, "st"))
}

// Regression: certificates for IP addresses were renewed on every run (the
// installed names were recorded without the IPs), and a trailing dot in a
// configured name made every issued certificate fail verification.
func TestIPAndTrailingDotNamesAreStable(t *testing.T) {
	e := newEnv(t)
	c := Certificate{Name: "ip", Domains: []string{"h.example.test.", "192.0.2.1", "2001:DB8:0::1"}}
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("first: %+v", res)
	}
	for range 2 {
		if res := e.run(c); res.Outcome != NotDue {
			t.Fatalf("rerun: %+v", res)
		}
	}
	if n := e.ca.issues.Load(); n != 1 {
		t.Fatalf("%d issuances", n)
	}
}

// Regression (issue 11, item 14): a non-canonical IPv6 name ("::0001")
// passed validation and was ordered as written; a CA echoes the canonical
// identifier ("::1"), so every order failed. The request carries canonical
// names, in the configured order.
func TestNonCanonicalIPOrderedCanonical(t *testing.T) {
	e := newEnv(t)
	c := Certificate{Name: "ip6", Domains: []string{"H.example.test.", "2001:DB8:0:0::0001", "::ffff:192.0.2.1"}}
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("first: %+v", res)
	}
	e.ca.mu.Lock()
	reqs := slices.Clone(e.ca.requests)
	e.ca.mu.Unlock()
	want := []string{"h.example.test", "2001:db8::1", "192.0.2.1"}
	if len(reqs) != 1 || !slices.Equal(reqs[0].Domains, want) {
		t.Fatalf("requests %+v, want one for %v", reqs, want)
	}
	if res := e.run(c); res.Outcome != NotDue {
		t.Fatalf("rerun: %+v", res)
	}
}

// A lineage directory others can write to is refused, also by a run that
// would have nothing to do (the no-op path must not skip the check).
func TestInsecureLineageRefusedOnNoOp(t *testing.T) {
	e := newEnv(t)
	c := cert("open")
	e.run(c)
	dir := filepath.Join(e.root, "open")
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	res := e.run(c)
	if res.Outcome != Failed || !errors.Is(res.Err, atomicfs.ErrInsecure) || !strings.Contains(res.Err.Error(), dir) {
		t.Fatalf("%+v", res)
	}
	served(t, dir)
}

// Regression (issue 11, item 8): the storage root was used whoever owned
// it and whoever could write it; it now gets the lineage directories'
// rules, on every run, the no-op one included.
func TestInsecureRootRefused(t *testing.T) {
	e := newEnv(t)
	c := cert("www")
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("first: %+v", res)
	}
	if err := os.Chmod(e.root, 0o777); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	e.r.Logger = slog.New(slog.NewTextHandler(&log, nil))
	res := e.run(c)
	if res.Outcome != Failed || !errors.Is(res.Err, atomicfs.ErrInsecure) || !errors.Is(res.Err, ErrConfig) || !strings.Contains(res.Err.Error(), e.root) {
		t.Fatalf("%+v", res)
	}
	// Refused before the lineage is looked at, and still reported.
	if !strings.Contains(log.String(), "outcome=failed") || !strings.Contains(log.String(), "writable by") {
		t.Errorf("the failure was not logged: %q", log.String())
	}
	if err := os.Chmod(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(e.root, 65534, -1); err != nil {
			t.Fatal(err)
		}
		// Issue 24: a local problem in the right words (not "bad
		// configuration", not "insecure"), naming the owner and the fix.
		if res := e.run(c); res.Outcome != Failed || !errors.Is(res.Err, ErrLocal) || !strings.Contains(res.Err.Error(), "uid 65534") ||
			!strings.Contains(res.Err.Error(), "chown -R root "+e.root) || strings.Contains(res.Err.Error(), "insecure") || strings.Contains(res.Err.Error(), "bad configuration") {
			t.Fatalf("root owned by another user: %+v", res)
		}
		if err := os.Chown(e.root, 0, -1); err != nil {
			t.Fatal(err)
		}
	}
	if res := e.run(c); res.Outcome != NotDue {
		t.Fatalf("after the fix: %+v", res)
	}
}

// current pointing to a generation someone deleted: the lineage is due and
// the new generation replaces the dangling link; no human needed.
func TestDanglingCurrentRenewed(t *testing.T) {
	e := newEnv(t)
	c := cert("gone")
	e.run(c)
	if err := os.RemoveAll(filepath.Join(e.root, "gone", "generations", "000001")); err != nil {
		t.Fatal(err)
	}
	res := e.run(c)
	if res.Outcome != Renewed || res.Generation == 0 {
		t.Fatalf("%+v", res)
	}
	served(t, filepath.Join(e.root, "gone"))
}

// maxSource makes every random pick the largest possible.
type maxSource struct{}

func (maxSource) Uint64() uint64 { return ^uint64(0) }

// Regression: a CA that clamps a short certificate's ARI window to its
// whole lifetime let the pick land at the last instant, and the embedded
// server served an expired certificate before the renewal ran.
func TestARIPickKeptOutOfLastTenth(t *testing.T) {
	e := newEnv(t)
	e.ca.lifetime = 6 * time.Hour
	e.r.Issuer = ariCA{e.ca}
	e.r.randSrc = maxSource{}
	c := cert("late")
	res := e.run(c)
	leaf := served(t, filepath.Join(e.root, "late"))
	e.ca.mu.Lock()
	e.ca.window = &expiry.Window{Start: leaf.NotBefore, End: leaf.NotAfter}
	e.ca.mu.Unlock()
	res = e.run(c)
	limit := leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 10)
	if res.Outcome != NotDue || res.RenewAt.After(limit) {
		t.Fatalf("renew at %v, want no later than %v (%+v)", res.RenewAt, limit, res)
	}
}

// TestPendingHooksRunWhenResumeFails: hooks left pending for the served
// generation were skipped (until a later run) when the run's recovery could
// not finish a journaled order; they run in the same run now.
func TestPendingHooksRunWhenResumeFails(t *testing.T) {
	e := newEnv(t)
	h := &counter{name: "reload"}
	h.fail.Store(true)
	c := cert("stalled", h)
	// (1) installed, hook failing: pending.
	if res := e.run(c); res.Outcome != Renewed || res.HooksPending != 1 {
		t.Fatalf("first run: %+v", res)
	}
	// (2) a forced renewal stopped after the order was journaled.
	e.ca.block = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	forced := c
	forced.Force = true
	before := e.ca.issues.Load()
	go func() { done <- e.r.Run(ctx, forced)[0] }()
	deadline := time.After(10 * time.Second)
	for e.ca.issues.Load() == before {
		select {
		case <-deadline:
			t.Fatal("the forced run placed no order")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if res := <-done; res.Outcome != Interrupted {
		t.Fatalf("stopped run: %+v", res)
	}
	e.ca.block = nil
	// (3) the order cannot be resumed this time (not gone: unreadable), and
	// the hook works again.
	stopped := filepath.Join(e.ca.dir, "orders", fmt.Sprintf("%d-%d.pem", os.Getpid(), e.ca.issues.Load()))
	if err := os.Mkdir(stopped, 0o755); err != nil {
		t.Fatalf("the stopped order (%v)", err)
	}
	h.fail.Store(false)
	res := e.run(c)
	if res.Outcome != Failed {
		t.Fatalf("resume of an unreadable order: %+v", res)
	}
	if h.n.Load() != 1 || res.HooksPending != 0 {
		t.Fatalf("the pending hook did not run in this run: ran %d, pending %d", h.n.Load(), res.HooksPending)
	}
}

// TestLockedRunSavesStateOnlyWhenChanged: a run that takes the lock (here
// because a hidden leftover defeats the fast path) but changes nothing
// leaves state.json alone (no write, no fsync); a state.json with a loose
// mode is rewritten although its content is the same.
func TestLockedRunSavesStateOnlyWhenChanged(t *testing.T) {
	e := newEnv(t)
	c := cert("site")
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("first run: %+v", res)
	}
	dir := filepath.Join(e.root, "site")
	path := filepath.Join(dir, "state.json")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".leftover"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if res := e.run(c); res.Outcome != NotDue || res.Err != nil {
		t.Fatalf("run under the lock: %+v", res)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("state.json was rewritten by a run that changed nothing")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := e.run(c); res.Outcome != NotDue || res.Err != nil {
		t.Fatalf("run with a loose state.json: %+v", res)
	}
	fixed, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(after, fixed) || fixed.Mode().Perm() != 0o600 {
		t.Fatalf("loose state.json not rewritten: mode %v, same file %v", fixed.Mode().Perm(), os.SameFile(after, fixed))
	}
}

// A run stopped after it journaled an order but before the finalize left
// leaves a ready order; when the lineage's names have changed since, the
// next run does not finalize that order (it would be an issuance for names
// no longer wanted, then replaced): it orders the configured names once.
func TestReadyOrderForOldNamesNotFinalized(t *testing.T) {
	e := newEnv(t)
	c := cert("moved")
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("first run: %+v", res)
	}
	journaled := make(chan struct{})
	e.ca.afterJournal = func() { close(journaled) }
	e.ca.block = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	forced := c
	forced.Force = true
	go func() { done <- e.r.Run(ctx, forced)[0] }()
	<-journaled
	cancel()
	if res := <-done; res.Outcome != Interrupted {
		t.Fatalf("stopped run: %+v", res)
	}
	e.ca.afterJournal, e.ca.block = nil, nil
	issued := e.ca.issuedCount()

	c.Domains = []string{"moved.example.test", "new.moved.example.test"}
	res := e.run(c)
	if res.Outcome != Renewed || res.Issued != 1 {
		t.Fatalf("run with the new names: %+v", res)
	}
	if n := e.ca.issuedCount() - issued; n != 1 {
		t.Fatalf("%d issuances for the new names, want 1 (the old names' ready order left unfinalized)", n)
	}
	if leaf := served(t, filepath.Join(e.root, "moved")); !slices.Equal(leaf.DNSNames, c.Domains) {
		t.Fatalf("serves %v, want %v", leaf.DNSNames, c.Domains)
	}
}
