package renew

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/safefile"
	"github.com/renewkit/renewkit/lockfile"
)

// Regression: a failure to write the new generation (a full disk) recorded
// no failure, error or not-before, so every run went back to the CA. It is
// now counted like a failed attempt, and the order journal is kept: the run
// after the not-before installs the certificate without ordering again.
func TestInstallFailureCountedAndOrderKept(t *testing.T) {
	e := newEnv(t)
	c := cert("full")
	if res := e.run(c); res.Outcome != Renewed {
		t.Fatalf("first run: %+v", res)
	}
	dir := filepath.Join(e.root, "full")
	// A generation at the end of the range makes Install fail.
	block := filepath.Join(dir, "generations", "999999999")
	if err := os.Mkdir(block, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Force = true
	res := e.run(c)
	if res.Outcome != Failed || res.Failures != 1 || !res.RetryNotBefore.After(e.clk.Now()) || !strings.Contains(res.Err.Error(), "install") {
		t.Fatalf("failed install: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "pending.key")); err != nil {
		t.Fatalf("order journal dropped: %v", err)
	}
	st, err := loadState(dir)
	if err != nil || st.Failures != 1 || st.LastError == "" || st.LastOutcome != Failed {
		t.Fatalf("persisted state %+v, %v", st, err)
	}
	issues := e.ca.issues.Load()
	c.Force = false
	e.clk.Add(time.Minute)
	if res := e.run(c); res.Outcome != BackingOff {
		t.Fatalf("within the not-before: %+v", res)
	}
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(res.RetryNotBefore.Sub(e.clk.Now()) + time.Second)
	res = e.run(c)
	if res.Outcome != Recovered || res.Failures != 0 || res.Issued != 1 {
		t.Fatalf("after the not-before: %+v", res)
	}
	if e.ca.issues.Load() != issues || e.ca.resumes.Load() != 1 {
		t.Errorf("issues %d (want %d), resumes %d (want 1)", e.ca.issues.Load(), issues, e.ca.resumes.Load())
	}
	// The Issuer learns whose order it resumes (a multi-lineage Issuer
	// routes on it).
	if !slices.Equal(e.ca.resumed, []string{"full"}) {
		t.Errorf("Resume saw lineage names %q, want [full]", e.ca.resumed)
	}
	served(t, dir)
}

// Regression: one 429 asking for ten years set the next attempt past the
// certificate's expiry.
func TestRetryAfterClamped(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	e.r.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	c := cert("limited")
	e.ca.failNext(backoff.RateLimited(errors.New("too many certificates"), 10*365*24*time.Hour))
	res := e.run(c)
	if res.Outcome != Failed {
		t.Fatalf("%+v", res)
	}
	if max := e.clk.Now().Add((24 * time.Hour)); res.RetryNotBefore.After(max) || !res.RetryNotBefore.After(e.clk.Now()) {
		t.Errorf("retry not before %v, want within (now, %v]", res.RetryNotBefore, max)
	}
	if !strings.Contains(logs.String(), "clamped") {
		t.Errorf("the clamp is not logged:\n%s", logs.String())
	}
}

// Regression: state.json was always 0644 although it keeps the output of
// failing hooks. A file an older version wrote is tightened by the next run.
func TestStateFileIsOwnerOnly(t *testing.T) {
	e := newEnv(t)
	h := &counter{name: "reload"}
	h.fail.Store(true)
	c := cert("private", h)
	e.run(c)
	path := filepath.Join(e.root, "private", atomicfs.StateFile)
	mode := func() os.FileMode {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(); m != 0o600 {
		t.Fatalf("state.json mode %v, want 0600", m)
	}
	h.fail.Store(false)
	e.run(c)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := e.run(c); res.Outcome != NotDue {
		t.Fatalf("%+v", res)
	}
	if m := mode(); m != 0o600 {
		t.Errorf("a 0644 state.json stayed %v after a run", m)
	}
}

// Regression: a FIFO at state.json hung the run and the status; a 1 GiB
// sparse state.json or pending.key was read whole.
func TestSpecialAndHugeLineageFiles(t *testing.T) {
	for _, tt := range []struct {
		name    string
		file    string
		make    func(t *testing.T, path string)
		outcome Outcome
		want    string
	}{
		{"FIFO at state.json", atomicfs.StateFile, mkfifo, Failed, "not a regular file"},
		{"1 GiB state.json", atomicfs.StateFile, sparse, NotDue, ""},
		{"FIFO at pending.key", "pending.key", mkfifo, NotDue, ""},
		{"1 GiB pending.key", "pending.key", sparse, NotDue, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := cert("odd")
			e.run(c)
			dir := filepath.Join(e.root, "odd")
			path := filepath.Join(dir, tt.file)
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			tt.make(t, path)
			done := make(chan Result, 1)
			go func() { done <- e.r.Run(t.Context(), c)[0] }()
			var res Result
			select {
			case res = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the run hangs")
			}
			if res.Outcome != tt.outcome || (tt.want != "" && !strings.Contains(res.Err.Error(), tt.want)) {
				t.Fatalf("%+v, want %s %q", res, tt.outcome, tt.want)
			}
			st := e.r.Status(c)[0]
			if tt.outcome == Failed && (st.Err == nil || !strings.Contains(st.Err.Error(), path)) {
				t.Errorf("status err = %v, want one naming %s", st.Err, path)
			}
			served(t, dir)
		})
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

func sparse(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
}

// Regression: a lineage directory that is a symbolic link was followed; it
// is refused (atomicfs.ErrInsecure), on the no-op path too.
func TestSymlinkedLineageRefused(t *testing.T) {
	e := newEnv(t)
	c := cert("real")
	e.run(c)
	if err := os.Symlink("real", filepath.Join(e.root, "alias")); err != nil {
		t.Fatal(err)
	}
	res := e.run(Certificate{Name: "alias", Domains: c.Domains})
	if res.Outcome != Failed || !errors.Is(res.Err, atomicfs.ErrInsecure) || !strings.Contains(res.Err.Error(), "symbolic link") {
		t.Fatalf("%+v", res)
	}
}

// Regression: roll-forward trusted any self-consistent generation newer
// than current: one planted with a certificate for the right names and the
// planter's key was served. Only a generation state.json or the order
// journal knows is rolled forward.
func TestPlantedGenerationNotRolledForward(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	e.r.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	c := cert("victim")
	e.run(c)
	dir := filepath.Join(e.root, "victim")
	before := served(t, dir)

	// The planter obtains a certificate for the same names (here from the
	// same CA, so it even chains) and plants it as generation 2.
	other := newEnv(t)
	other.ca = e.ca
	other.r.Issuer = e.ca
	other.r.Roots = e.r.Roots
	other.run(c)
	src := filepath.Join(other.root, "victim", "generations", "000001")
	dst := filepath.Join(dir, "generations", "000002")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cert.pem", "chain.pem", "fullchain.pem", "privkey.pem", "combined.pem"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A lost state.json sends the next run through recovery.
	if err := os.Remove(filepath.Join(dir, atomicfs.StateFile)); err != nil {
		t.Fatal(err)
	}
	res := e.run(c)
	if res.Outcome != NotDue || res.Generation != 1 {
		t.Fatalf("%+v", res)
	}
	if after := served(t, dir); !after.Equal(before) {
		t.Fatal("the planted generation is served")
	}
	if !strings.Contains(logs.String(), "not rolling forward") {
		t.Errorf("the refusal is not logged:\n%s", logs.String())
	}
}

var _ hooks.Hook = (*counter)(nil)

// Regression: a lock holder that is stopped (SIGSTOP), frozen or stuck in
// the kernel kept the flock, and every later run reported Locked, "fine",
// until the certificate expired. A fresh lock stays Locked; one held past
// LockBound is LockStuck, a failure naming the holder and its age.
func TestStuckLockHolderIsAFailure(t *testing.T) {
	e := newEnv(t)
	h := &counter{name: "reload"}
	c := cert("stuck", h)
	c.Force = true // the fast path does not take the lock
	e.run(c)
	l, err := lockfile.TryLock(filepath.Join(e.root, "stuck", atomicfs.LockFile))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	res := e.run(c)
	if res.Outcome != Locked || res.Err != nil || res.LockHolder != os.Getpid() || res.LockedSince.IsZero() {
		t.Fatalf("fresh lock: %+v", res)
	}
	if !res.Outcome.OK() {
		t.Error("Locked is not OK")
	}
	bound := e.r.LockBound(c)
	if bound < time.Hour || bound > 3*time.Hour {
		t.Errorf("derived bound %v, want the order of an hour or two", bound)
	}
	e.clk.Add(bound - time.Minute)
	if res := e.run(c); res.Outcome != Locked {
		t.Fatalf("within the bound: %+v", res)
	}
	e.clk.Add(2 * time.Minute)
	res = e.run(c)
	if res.Outcome != LockStuck || res.Outcome.OK() || !errors.Is(res.Err, errLockStuck) || !errors.Is(res.Err, lockfile.ErrLocked) {
		t.Fatalf("past the bound: %+v", res)
	}
	if msg := res.Err.Error(); !strings.Contains(msg, fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(msg, "stuck") {
		t.Errorf("error does not name the holder: %s", msg)
	}
	e.r.LockStuckAfter = -1
	if res := e.run(c); res.Outcome != Locked {
		t.Errorf("with the bound switched off: %+v", res)
	}
}

// TestLockBoundFollowsHooksAndPolicy: the derived bound grows with the hook
// timeouts and the retry policy; LockStuckAfter overrides it.
func TestLockBoundFollowsHooksAndPolicy(t *testing.T) {
	r := &Renewer{}
	plain := r.LockBound(Certificate{})
	slow := hooks.Command("/bin/true").WithTimeout(time.Hour)
	if got := r.LockBound(Certificate{Hooks: []hooks.Hook{slow}}); got != plain+2*time.Hour {
		t.Errorf("with a 1 h hook: %v, want %v", got, plain+2*time.Hour)
	}
	if got := r.LockBound(Certificate{Hooks: []hooks.Hook{&counter{name: "x"}}}); got != plain+2*hookBudget {
		t.Errorf("with a Go hook: %v, want %v", got, plain+2*hookBudget)
	}
	if d := hooks.Command("/bin/true").Timeout(); d != hookBudget {
		t.Errorf("a command's default timeout is %v, the budget of a Go hook %v: keep them equal", d, hookBudget)
	}
	r.Retry = backoff.Policy{Retries: -1}
	if got := r.LockBound(Certificate{}); got >= plain {
		t.Errorf("without retries: %v, want less than %v", got, plain)
	}
	r.LockStuckAfter = 5 * time.Minute
	if got := r.LockBound(Certificate{Hooks: []hooks.Hook{slow}}); got != 5*time.Minute {
		t.Errorf("LockStuckAfter set: %v", got)
	}
}

// Regression: CertSource read a generation's files whole and blocking: a
// FIFO there hung the handshake that reloaded (and every later reload).
func TestCertSourceRefusesFIFO(t *testing.T) {
	e := newEnv(t)
	c := cert("fifo")
	e.run(c)
	dir := filepath.Join(e.root, "fifo")
	gen := filepath.Join(dir, "generations", "000009")
	if err := os.Mkdir(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(gen, "fullchain.pem"))
	sparse(t, filepath.Join(gen, "privkey.pem"))
	if err := os.Remove(filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("generations/000009", filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := NewCertSource(time.Hour, dir)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, safefile.ErrNotRegular) {
			t.Fatalf("err = %v, want ErrNotRegular", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("NewCertSource hangs on a FIFO")
	}
}
