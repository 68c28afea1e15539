package renew

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/hooks"
)

// preflightCA is the fake CA with a Preflight that fails while err is set.
type preflightCA struct {
	*fakeCA
	err   atomic.Pointer[error]
	calls atomic.Int32
}

func (p *preflightCA) Preflight(ctx context.Context, req IssueRequest) error {
	p.calls.Add(1)
	if req.Key != nil || req.Name == "" || len(req.Domains) == 0 {
		return errors.New("preflight got a malformed request")
	}
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (p *preflightCA) fail(err error) { p.err.Store(&err) }

func TestPreflightFailureIsLocalAndNotCounted(t *testing.T) {
	e := newEnv(t)
	pca := &preflightCA{fakeCA: e.ca}
	e.r.Issuer = pca
	pca.fail(&LocalError{What: "webroot /srv/www", Err: os.ErrPermission, Fix: "chown it"})
	c := cert("local")
	res := e.run(c)
	if res.Outcome != Failed || !errors.Is(res.Err, ErrLocal) {
		t.Fatalf("want a local failure: %+v", res)
	}
	if le, ok := errors.AsType[*LocalError](res.Err); !ok || le.Fix != "chown it" {
		t.Fatalf("the fix is lost: %v", res.Err)
	}
	if n := e.ca.issues.Load(); n != 0 || res.Attempts != 0 {
		t.Fatalf("the CA was asked %d times (attempts %d) despite a failed preflight", n, res.Attempts)
	}
	if res.Failures != 0 || !res.RetryNotBefore.IsZero() {
		t.Fatalf("a local failure was counted against the CA's backoff: %+v", res)
	}
	if !res.NextCheck.After(e.clk.Now()) {
		t.Fatalf("NextCheck %v is not in the future", res.NextCheck)
	}
	st := e.r.Status(c)[0]
	if !st.LastErrorLocal || !strings.Contains(st.LastError, "webroot /srv/www") || st.Failures != 0 {
		t.Fatalf("status: %+v", st)
	}
	// Fixed, the very next run orders: no backoff to wait out.
	pca.err.Store(nil)
	e.clk.Add(time.Minute)
	if res = e.run(c); res.Outcome != Renewed {
		t.Fatalf("after the fix: %+v", res)
	}
	if st := e.r.Status(c)[0]; st.LastErrorLocal || st.LastError != "" {
		t.Fatalf("the local error outlived the success: %+v", st)
	}
}

func TestLocalErrorFromIssueNotCounted(t *testing.T) {
	e := newEnv(t)
	e.ca.failNext(&LocalError{What: "listen address :80", Err: errors.New("bind: address already in use")})
	res := e.run(cert("busy"))
	if res.Outcome != Failed || !errors.Is(res.Err, ErrLocal) {
		t.Fatalf("%+v", res)
	}
	if res.Attempts != 1 {
		t.Fatalf("a local error was retried within the run: %d attempts", res.Attempts)
	}
	if res.Failures != 0 || !res.RetryNotBefore.IsZero() {
		t.Fatalf("counted against the CA's backoff: %+v", res)
	}
}

// TestLocalErrorAfterOrderingIsCounted: a local failure the preflight could
// not see, found once the order was placed (a DNS provider refusing
// revoked credentials), was not counted, so -serve placed a new order every
// five minutes. It backs off like any failure now.
func TestLocalErrorAfterOrderingIsCounted(t *testing.T) {
	e := newEnv(t)
	e.ca.failNext(&LocalError{What: "DNS provider", Err: errors.New("403 forbidden"), Fix: "renew the API token", Ordered: true})
	res := e.run(cert("revoked"))
	if res.Outcome != Failed || !errors.Is(res.Err, ErrLocal) {
		t.Fatalf("%+v", res)
	}
	if res.Attempts != 1 {
		t.Fatalf("a local error was retried within the run: %d attempts", res.Attempts)
	}
	if res.Failures != 1 || res.RetryNotBefore.IsZero() {
		t.Fatalf("not counted against the backoff although an order was placed: %+v", res)
	}
}

func TestMissingHookProgramFailsBeforeOrdering(t *testing.T) {
	e := newEnv(t)
	missing := filepath.Join(t.TempDir(), "no-such-reload")
	c := cert("hook", hooks.Command(missing, "reload"))
	res := e.run(c)
	if res.Outcome != Failed || !errors.Is(res.Err, ErrLocal) || !strings.Contains(res.Err.Error(), missing) {
		t.Fatalf("%+v", res)
	}
	if e.ca.issues.Load() != 0 {
		t.Fatal("ordered although the deploy hook cannot run")
	}
	// The hook is installed: the run goes ahead.
	if err := os.WriteFile(missing, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if res = e.run(c); res.Outcome != Renewed || res.HookErr != nil {
		t.Fatalf("after installing the hook: %+v", res)
	}
}

func TestBackingOffSaysWhyAndUntil(t *testing.T) {
	e := newEnv(t)
	e.ca.failNext(backoff.Permanent(errors.New("urn:ietf:params:acme:error:unauthorized: 404 for the token")))
	c := cert("gated")
	if res := e.run(c); res.Outcome != Failed || res.Failures != 1 {
		t.Fatalf("%+v", res)
	}
	e.clk.Add(time.Minute)
	res := e.run(c)
	if res.Outcome != BackingOff || !errors.Is(res.Err, errBackingOff) {
		t.Fatalf("%+v", res)
	}
	for _, want := range []string{"404 for the token", res.RetryNotBefore.UTC().Format(time.RFC3339)} {
		if !strings.Contains(res.Err.Error(), want) {
			t.Errorf("the backing-off error %q does not say %q", res.Err, want)
		}
	}
}

func TestChangedConfigurationIsNotHeldBackByOldFailure(t *testing.T) {
	e := newEnv(t)
	e.ca.failNext(backoff.Permanent(errors.New("urn:ietf:params:acme:error:unauthorized: 404 for the token")))
	c := cert("fixed")
	c.Fingerprint = "webroot=/var/www/wrong"
	if res := e.run(c); res.Outcome != Failed {
		t.Fatalf("%+v", res)
	}
	e.clk.Add(time.Minute)
	// The same configuration backs off ...
	if res := e.run(c); res.Outcome != BackingOff {
		t.Fatalf("same configuration: %+v", res)
	}
	// ... a fixed one does not.
	c.Fingerprint = "webroot=/var/www/html"
	if st := e.r.Status(c)[0]; !st.ConfigChanged {
		t.Fatalf("status does not say the configuration changed: %+v", st)
	}
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("changed configuration: %+v", res)
	}
}

func TestRenewerPreflightReportsEveryProblem(t *testing.T) {
	e := newEnv(t)
	pca := &preflightCA{fakeCA: e.ca}
	e.r.Issuer = pca
	pca.fail(&LocalError{What: "account directory /x", Err: os.ErrPermission})
	c := cert("all", hooks.Command(filepath.Join(t.TempDir(), "missing")))
	err := e.r.Preflight(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), "account directory /x") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("want both problems, got %v", err)
	}
	if _, serr := os.Stat(e.root); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("Preflight created the root: %v", serr)
	}
}

func TestCheckWritableDirNamesOwnerAndFix(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write anywhere")
	}
	dir := t.TempDir()
	if err := CheckWritableDir("webroot", dir, true); err != nil {
		t.Fatalf("writable directory: %v", err)
	}
	if err := CheckWritableDir("webroot", filepath.Join(dir, "a", "b"), true); err != nil {
		t.Fatalf("creatable directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the check left a directory behind: %v", err)
	}
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{ro, filepath.Join(ro, ".well-known", "acme-challenge")} {
		err := CheckWritableDir("webroot", d, true)
		le, ok := errors.AsType[*LocalError](err)
		if !ok || !errors.Is(err, os.ErrPermission) || le.Fix == "" || !strings.Contains(le.Error(), d) {
			t.Errorf("%s: %v", d, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("probes left behind: %v", entries)
	}
}

func TestOwnerFixNamesOwnerUserAndCommand(t *testing.T) {
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, -1); err != nil {
			t.Fatal(err)
		}
		fix := ownerFix(dir, dir)
		for _, want := range []string{"uid 65534", "uid 0", "chown -R " + userArg(0) + " " + dir} {
			if !strings.Contains(fix, want) {
				t.Errorf("fix %q does not say %q", fix, want)
			}
		}
	}
	sub := filepath.Join(dir, "x", "y")
	// One fix that leaves every new level this user's (install -d would
	// make the intermediate ones root's).
	if fix := ownerFix(dir, sub); !strings.Contains(fix, "mkdir -p "+sub+" && chown -R "+userArg(os.Geteuid())+" "+filepath.Join(dir, "x")) {
		t.Errorf("fix for a missing nested directory: %q", fix)
	}
	if fix := ownerFix(dir, filepath.Join(dir, "x")); !strings.Contains(fix, "install -d -o "+userArg(os.Geteuid())+" "+filepath.Join(dir, "x")) {
		t.Errorf("fix for a missing directory: %q", fix)
	}
}

func TestStatusOfLineageOwnedByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the lineage to another user")
	}
	e := newEnv(t)
	c := cert("theirs")
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("%+v", res)
	}
	dir := filepath.Join(e.root, "theirs")
	if err := os.Chown(dir, 65534, -1); err != nil {
		t.Fatal(err)
	}
	st := e.r.Status(c)[0]
	if !st.Installed || st.NotAfter.IsZero() || st.Due {
		t.Errorf("the status of a lineage owned by another user is not shown: %+v", st)
	}
	if st.Err == nil || !errors.Is(st.Err, ErrLocal) || !strings.Contains(st.Err.Error(), "chown -R "+userArg(0)+" "+dir) {
		t.Errorf("the status does not say how to fix the owner: %v", st.Err)
	}
	// A run fails the same way, without an order.
	before := e.ca.issues.Load()
	c.Force = true
	res := e.run(c)
	if res.Outcome != Failed || !errors.Is(res.Err, ErrLocal) || e.ca.issues.Load() != before {
		t.Errorf("run: %+v", res)
	}
}

// TestDuplicateNameIsReported: a lineage listed twice failed without a log
// record or an Observer call (a silent failure).
func TestDuplicateNameIsReported(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	finished := map[string][]Outcome{}
	e.r.Observer = observerFunc(func(res Result) {
		mu.Lock()
		defer mu.Unlock()
		finished[res.Name] = append(finished[res.Name], res.Outcome)
	})
	results := e.r.Run(t.Context(), cert("twice"), cert("twice"))
	if len(results) != 2 || !errors.Is(results[1].Err, errInvalidCertificate) {
		t.Fatalf("%+v", results)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := finished["twice"]; len(got) != 2 || !slices.Contains(got, Failed) {
		t.Fatalf("Observer saw %v, want both results including the failure", got)
	}
}

// TestProbeRemovesStaleProbes: a process killed between creating and
// removing its probe left the file in the webroot for good.
func TestProbeRemovesStaleProbes(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".renewkit-probe-123")
	fresh := filepath.Join(dir, ".renewkit-probe-456") // another process's, in use
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := CheckWritableDir("webroot", dir, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale probe still there: %v", err)
	}
	if _, err := os.Lstat(fresh); err != nil {
		t.Errorf("a fresh probe was removed: %v", err)
	}
}

// TestStatusSaysWhetherTheLastErrorIsPermanent: a readiness check primed
// from Status after a restart could not tell a refusal from a passing
// failure, and said ready while the CA refused the certificate.
func TestStatusSaysWhetherTheLastErrorIsPermanent(t *testing.T) {
	e := newEnv(t)
	c := cert("refused")
	e.ca.failNext(backoff.Permanent(errors.New("urn:ietf:params:acme:error:unauthorized")))
	if res := e.run(c); res.Outcome != Failed {
		t.Fatalf("%+v", res)
	}
	if st := e.r.Status(c)[0]; !st.LastErrorPermanent {
		t.Fatalf("a refusal: %+v, want LastErrorPermanent", st)
	}
	t2 := cert("flaky")
	e.ca.failNext(backoff.Transient(errors.New("connection reset")), backoff.Transient(errors.New("connection reset")),
		backoff.Transient(errors.New("connection reset")), backoff.Transient(errors.New("connection reset")))
	if res := e.run(t2); res.Outcome != Failed {
		t.Fatalf("%+v", res)
	}
	if st := e.r.Status(t2)[0]; st.LastErrorPermanent || st.LastError == "" {
		t.Fatalf("a passing failure: %+v, want LastErrorPermanent false", st)
	}
}
