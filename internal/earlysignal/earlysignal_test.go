//go:build unix

package earlysignal

import (
	"context"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

var runs int

// TestSignalBeforeNotifyContextIsHeld: a SIGTERM that arrived before the
// program asked for signals killed it (status 143). Since this package's
// init registered, the signal is held and cancels the context handed out
// later. (Without the registration this test binary dies of the signal.)
func TestSignalBeforeNotifyContextIsHeld(t *testing.T) {
	if runs++; runs > 1 {
		// -count: an earlier run's NotifyContext stopped the registration.
		signal.Notify(early, syscall.SIGTERM, syscall.SIGINT)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The signal is delivered asynchronously; NotifyContext must see it
	// whether it is already in the channel or arrives just after.
	ctx, stop := NotifyContext(context.Background())
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the early SIGTERM did not cancel the context")
	}
}

// TestStopReleases: stop cancels the context and is idempotent.
func TestStopReleases(t *testing.T) {
	ctx, stop := NotifyContext(context.Background())
	stop()
	stop()
	if ctx.Err() == nil {
		t.Fatal("stop did not cancel the context")
	}
}
