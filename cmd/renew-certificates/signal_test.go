//go:build unix

package main

import (
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSignalInterrupts runs the real program, stops it with a signal while
// its order waits for the CA to finalize, and checks that it exits at once
// with exitInterrupted, leaving the served certificate whole and a journal
// the next run finishes from without another order.
func TestSignalInterrupts(t *testing.T) {
	bin := buildBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			testSignal(t, bin, sig)
		})
	}
}

func testSignal(t *testing.T, bin string, sig syscall.Signal) {
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	// A front for the CA that holds finalize requests, while told to,
	// until the client gives up, and says when one arrived.
	var stall atomic.Bool
	reached := make(chan struct{}, 1)
	frontCA(t, ca, env, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if stall.Load() && strings.HasPrefix(r.URL.Path, "/finalize-order/") {
			// The server notices the client leaving only once the body
			// is read.
			io.Copy(io.Discard, r.Body)
			select {
			case reached <- struct{}{}:
			default:
			}
			<-r.Context().Done()
			return
		}
		next.ServeHTTP(w, r)
	})

	env.mustRun(t, exitOK) // generation 1, in-process
	before := checkLineage(t, env, "a")

	stall.Store(true)
	var stderr syncBuffer
	cmd := exec.Command(bin, "-config", env.config, "-force", "all")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})

	select {
	case <-reached:
	case err := <-done:
		done <- err
		t.Fatalf("the program ended before finalize (%v):\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("finalize not reached in 60 s:\n%s", stderr.String())
	}
	sent := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	select {
	case waitErr = <-done:
		done <- waitErr
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after %v:\n%s", sig, stderr.String())
	}
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v, want code %d\n%s", waitErr, exitInterrupted, stderr.String())
	}
	if took > time.Second {
		t.Errorf("exited %v after %v, want within a second", took, sig)
	}
	t.Logf("exited with code %d %v after %v", exitInterrupted, took.Round(time.Millisecond), sig)
	if got := summaries(stderr.String()); got["a"] != "interrupted" {
		t.Errorf("summary records = %v\n%s", got, stderr.String())
	}

	// The served certificate is still the old one, whole, and the order is
	// journaled for the next run.
	if after := checkLineage(t, env, "a"); after.SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Errorf("served certificate changed")
	}
	out, _ := env.mustRun(t, exitOK, "-status")
	if !strings.Contains(out, "a: order https://") {
		t.Errorf("status after the interruption shows no journaled order:\n%s", out)
	}

	// The next run finishes the journaled order (its finalize never
	// reached the CA: the order is still ready, and the run finalizes it
	// with the journaled key) and installs its certificate: the forced
	// renewal's one order, no second one.
	stall.Store(false)
	_, log := env.mustRun(t, exitOK)
	if got := summaries(log); got["a"] != "recovered" {
		t.Errorf("run after the interruption: %v\n%s", got, log)
	}
	if after := checkLineage(t, env, "a"); after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Errorf("the journaled order's certificate was not installed")
	}
	if st := ca.Stats("a.example.test"); st.Orders != 2 || st.Issued != 2 {
		t.Errorf("CA stats %+v, want 2 orders and 2 issuances (the first, and the forced renewal's)", st)
	}
	out, _ = env.mustRun(t, exitOK, "-status")
	if strings.Contains(out, "a: order") {
		t.Errorf("journal left after recovery:\n%s", out)
	}
}
