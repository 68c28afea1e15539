// Package earlysignal catches SIGTERM and SIGINT from the first millisecond
// of a program's life, for a main package whose exit code must say
// "interrupted" whenever it is stopped.
//
// Without it a program registers for signals in main, after every package
// it imports has been initialised (renew-certificates: 5 to 10 ms, longer
// on a loaded machine); a signal in that window takes the default action
// and the process dies with status 143 instead of exiting with its own
// code. Importing this package registers for both signals in its init,
// which runs right after os/signal's, about a millisecond in: a signal
// received from then on is held until [NotifyContext] hands it over.
//
// This is the one package of the module with an init side effect, which is
// why it is internal and imported only by a main package. What remains
// before its init (the kernel's exec and the Go runtime's start, about a
// millisecond) cannot be covered from Go: a signal there still kills the
// process, which renewkit survives like any kill (the next run finishes or
// rolls back what was begun).
package earlysignal

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// early receives the signals from init on. Its buffer holds one signal of
// each kind received before NotifyContext.
var early = make(chan os.Signal, 2)

func init() {
	signal.Notify(early, syscall.SIGTERM, syscall.SIGINT)
}

// NotifyContext returns a context that is cancelled when SIGTERM or SIGINT
// arrives, or arrived at any time since the program started, like
// signal.NotifyContext. After the first signal the signals' default action
// is restored, so a second one kills the program at once; stop does the same
// and releases the context's resources. Call it once.
func NotifyContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			signal.Stop(early)
			close(done)
		})
		cancel()
	}
	go func() {
		select {
		case <-early:
			signal.Stop(early) // a second signal: the default action
			cancel()
		case <-done:
		case <-ctx.Done():
		}
	}()
	return ctx, stop
}
