//go:build unix

package main

import (
	"context"
	"fmt"
	"github.com/renewkit/renewkit/atomicfs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/lockfile"
)

// Regression: a FIFO at the configuration path hung the run, -status and
// -dry-run; it is refused with a message naming it.
func TestConfigFIFORefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range [][]string{nil, {"-status"}, {"-dry-run"}} {
		done := make(chan int, 1)
		var errOut string
		go func() {
			code, _, e := runCLI(t, context.Background(), append([]string{"-config", path}, mode...)...)
			errOut = e
			done <- code
		}()
		select {
		case code := <-done:
			if code != exitUsage || !strings.Contains(errOut, path) || !strings.Contains(errOut, "not a regular file") {
				t.Errorf("%v: exit %d\n%s", mode, code, errOut)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%v: hangs on a FIFO configuration", mode)
		}
	}
}

// Regression: SIGTERM while deploy hooks ran exited 1, not the documented
// 3. The hook tells the test it runs by opening a FIFO; the run is then
// cancelled as a signal cancels it.
func TestInterruptedDuringHooksExits3(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	fifo := filepath.Join(t.TempDir(), "running")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	hook := fmt.Sprintf(`hooks = [["/bin/sh", "-c", "echo > %s; exec sleep 60"]]`, fifo)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`+"\n"+hook)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code int
		log  string
	}
	done := make(chan result, 1)
	go func() {
		code, _, log := env.run(t, ctx)
		done <- result{code, log}
	}()
	f, err := os.Open(fifo) // returns once the hook opened it to write
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the run did not end after the cancel")
	}
	if r.code != exitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitInterrupted, r.log)
	}
	checkLineage(t, env, "a") // installed; the hook stays pending
}

// Regression: a stopped lock holder made every run report locked and exit
// 0 until the certificate expired. A lock held past the bound is
// lock_stuck: exit 1, the holder and its age in the log and the metrics.
func TestStuckLockExits1(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	path := filepath.Join(env.root, "a", atomicfs.LockFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := lockfile.TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	_, log := env.mustRun(t, exitOK)
	if got := summaries(log); got["a"] != "locked" {
		t.Fatalf("fresh lock: %v\n%s", got, log)
	}
	// The holder's line says it took the lock three hours ago (the flock
	// is on the descriptor: rewriting the text keeps it held).
	since := time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339Nano)
	if err := os.WriteFile(path, fmt.Appendf(nil, "pid=%-10d since=%-30s\n", 4242, since), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := filepath.Join(t.TempDir(), "renewkit.prom")
	_, log = env.mustRun(t, exitFailed, "-metrics-file", prom)
	if got := summaries(log); got["a"] != "lock_stuck" {
		t.Fatalf("old lock: %v\n%s", got, log)
	}
	for _, want := range []string{"pid 4242", "lock_holder_pid=4242", "stuck"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	b, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `renewkit_lock_held_seconds{name="a"} 10800`) { // 10800.xxx
		t.Errorf("metrics lack the lock's age:\n%s", b)
	}
	if n := ca.Stats().Orders; n != 0 {
		t.Errorf("%d orders while another run holds the lock", n)
	}
}
