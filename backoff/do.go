package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// stopReason says why Do gave up.
type stopReason int

// The reasons Do stops without success.
const (
	// stopExhausted: every allowed attempt failed with a retryable error, or
	// the next wait would have exceeded the wait budget.
	stopExhausted stopReason = iota + 1
	// stopPermanent: the operation failed with a permanent error.
	stopPermanent
	// stopRateLimited: the last attempt was refused by a rate limit and
	// waiting as asked would exceed the budget (or no attempt was left).
	// gaveUp.Until says when the server allows the next attempt.
	stopRateLimited
	// stopCancelled: the context ended (before an attempt, during one or
	// during a wait).
	stopCancelled
)

var stopNames = [...]string{"unknown", "exhausted", "permanent", "rate-limited", "cancelled"}

// String returns a short lower-case name, suitable as a metric label.
func (r stopReason) String() string {
	if r < 0 || int(r) >= len(stopNames) {
		return "stopReason(" + strconv.Itoa(int(r)) + ")"
	}
	return stopNames[r]
}

// gaveUp is the error of a Do that did not succeed. It says why Do
// stopped and wraps the last error of the operation and, when the context
// ended, the context's cause: errors.Is and errors.As reach both.
type gaveUp struct {
	// Reason says why Do stopped.
	Reason stopReason
	// Attempts is how many times the operation ran (0 when the context had
	// ended before the first attempt).
	Attempts int
	// Until is set when the last error was rate-limited with a Retry-After:
	// the earliest time the server allows another attempt. A caller should
	// not try again before it (see NotBefore for the cross-run delay).
	Until time.Time
	// Err is the last error of the operation (nil if it never ran).
	Err error
	// Cause is context.Cause of the context when Reason is stopCancelled,
	// otherwise nil. When a cause was set with context.WithCancelCause, the
	// gaveUp also wraps the context's plain error, so errors.Is(err,
	// context.Canceled) holds either way.
	Cause error

	ctxErr error // ctx.Err(), when Cause is not already it
}

// cancelled returns the gaveUp of a Do whose context has ended.
func cancelled(ctx context.Context, attempts int, until time.Time, last, sleepErr error) *gaveUp {
	e := &gaveUp{Reason: stopCancelled, Attempts: attempts, Until: until, Err: last, Cause: context.Cause(ctx)}
	if e.Cause == nil { // a custom sleep failed with ctx alive
		e.Cause = sleepErr
	}
	if err := ctx.Err(); err != nil && !errors.Is(e.Cause, err) {
		e.ctxErr = err
	}
	return e
}

// Error says why Do stopped, after how many attempts, and the last error.
func (e *gaveUp) Error() string {
	var b strings.Builder
	b.WriteString("backoff: ")
	attempts := strconv.Itoa(e.Attempts) + " attempt"
	if e.Attempts != 1 {
		attempts += "s"
	}
	switch e.Reason {
	case stopExhausted:
		b.WriteString("giving up after " + attempts)
	case stopPermanent:
		b.WriteString("permanent error after " + attempts)
	case stopRateLimited:
		b.WriteString("rate limited")
		if !e.Until.IsZero() {
			b.WriteString(" until " + e.Until.UTC().Format(time.RFC3339))
		}
		b.WriteString(", giving up after " + attempts)
	case stopCancelled:
		b.WriteString("cancelled after " + attempts)
		if e.Cause != nil {
			b.WriteString(": " + e.Cause.Error())
		}
		if e.Err != nil && !errors.Is(e.Err, e.Cause) {
			b.WriteString("; last error: " + e.Err.Error())
		}
		return b.String()
	default:
		b.WriteString(e.Reason.String() + " after " + attempts)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the last error and the context's cause (and plain error),
// whichever are set.
func (e *gaveUp) Unwrap() []error {
	errs := make([]error, 0, 3)
	for _, err := range []error{e.Err, e.Cause, e.ctxErr} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Attempt describes a failed attempt after which Do will wait and retry. It
// is passed to the WithNotify callback. It is a plain value.
type Attempt struct {
	// Number is the attempt that failed, from 1.
	Number int
	// Err is its error.
	Err error
	// Class is how Do classified Err.
	Class Class
	// Wait is how long Do waits before attempt Number+1.
	Wait time.Duration
}

// Option configures Do.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	notify  func(Attempt)
	sleep   func(ctx context.Context, d time.Duration) error
	now     func() time.Time
	random  func() float64
	maxWait time.Duration
	hasMax  bool
}

// WithNotify calls f after each failed attempt that will be retried, before
// the wait, on Do's goroutine. It is not called for the attempt that ends
// Do: the returned error describes that one.
func WithNotify(f func(Attempt)) Option { return optionFunc(func(c *config) { c.notify = f }) }

// withSleep replaces the wait between attempts, a test seam as cenkalti's
// withTimer is. sleep must return nil after d, or return early with a
// non-nil error (normally context.Cause(ctx)) when ctx ends; Do then stops
// with stopCancelled. The default uses a timer and returns as soon as ctx is
// done. Callers outside the package that must not wait use a Policy with
// short or no waits (Initial < 0).
func withSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return optionFunc(func(c *config) { c.sleep = sleep })
}

// withNow replaces the clock used for gaveUp.Until (default time.Now).
func withNow(now func() time.Time) Option { return optionFunc(func(c *config) { c.now = now }) }

// withRand replaces the source of jitter: random must return values in
// [0, 1), like (*rand.Rand).Float64 of math/rand/v2. Do calls it from its
// own goroutine only; a source shared between concurrent calls of Do must be
// safe for concurrent use (math/rand/v2's top-level Float64, the default,
// is).
func withRand(random func() float64) Option {
	return optionFunc(func(c *config) { c.random = random })
}

// withMaxWait sets the wait budget: the most Do may spend waiting in total
// (default: Policy.Budget). A retry whose wait would exceed what is left is
// not made: Do stops with stopRateLimited if the wait was stretched by a
// Retry-After, stopExhausted otherwise. 0 or less allows no waiting.
func withMaxWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxWait, c.hasMax = max(d, 0), true })
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// Do calls op until it succeeds, retrying failures according to p, and
// returns nil on success or an error saying why it stopped (cancelled,
// permanent error, attempts exhausted, rate limited) and after how many
// attempts.
//
// Each round:
//
//  1. If ctx has ended, stop: stopCancelled. (op never runs with an ended
//     context, not even the first time.)
//  2. Run op(ctx). On success return nil.
//  3. If ctx has ended meanwhile, stop: stopCancelled, whatever op returned.
//  4. Classify the error with ClassOf. A context error from a context of
//     op's own (ctx still alive) counts as transient for
//     context.DeadlineExceeded (an attempt timed out) and permanent for
//     context.Canceled.
//  5. Permanent: stop at once, stopPermanent.
//  6. No attempt left (Retries+1 made): stop, stopExhausted, or
//     stopRateLimited if the last error was rate-limited.
//  7. Compute the wait: the policy's next jittered wait, or for a
//     rate-limited error the larger of that and the server's Retry-After.
//  8. If the wait exceeds what is left of the budget (withMaxWait, default
//     Policy.Budget), stop: stopRateLimited for a rate-limited error,
//     stopExhausted otherwise.
//  9. Notify (WithNotify), wait, returning promptly with stopCancelled if
//     ctx ends during the wait, and go round again.
//
// The error wraps the last error, so errors.Is/As find the cause (an
// *acme.ProblemDetails, say) through it; after a cancellation it also wraps
// the context's cause, so errors.Is(err, context.Canceled) holds too. Its
// message names a rate limit's end whenever the last error had a
// Retry-After.
//
// Do keeps nothing between calls and starts no goroutine. op must be safe to
// call again after a failure.
func Do(ctx context.Context, p Policy, op func(ctx context.Context) error, opts ...Option) error {
	c := config{sleep: sleepCtx, now: time.Now, random: rand.Float64}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	p = p.normalized()
	budget := p.budget()
	if c.hasMax {
		budget = c.maxWait
	}
	seq := p.intervals()
	var waited time.Duration
	var last error

	for attempt := 1; ; attempt++ {
		// (1) an ended context: do not even start.
		if ctx.Err() != nil {
			return cancelled(ctx, attempt-1, time.Time{}, last, nil)
		}
		// (2) the attempt.
		err := op(ctx)
		if err == nil {
			return nil
		}
		last = err
		// (3) cancelled during the attempt: the ctx decides, not err.
		if ctx.Err() != nil {
			return cancelled(ctx, attempt, time.Time{}, err, nil)
		}
		// (4) classify.
		class, hint := classify(err)
		if class == ClassCancelled { // op's own context; ours is alive
			class = ClassPermanent
			if errors.Is(err, context.DeadlineExceeded) {
				class = ClassTransient
			}
		}
		var until time.Time
		if class == ClassRateLimited && hint > 0 {
			until = c.now().Add(hint)
		}
		// (5) permanent.
		if class == ClassPermanent {
			return &gaveUp{Reason: stopPermanent, Attempts: attempt, Err: err}
		}
		limited := stopExhausted
		if class == ClassRateLimited {
			limited = stopRateLimited
		}
		// (6) out of attempts.
		if attempt > p.Retries {
			return &gaveUp{Reason: limited, Attempts: attempt, Until: until, Err: err}
		}
		// (7) the wait.
		wait := p.wait(seq.NextBackOff(), c.random())
		if class == ClassRateLimited {
			wait = max(wait, hint)
		}
		// (8) the budget.
		if wait > budget-waited {
			return &gaveUp{Reason: limited, Attempts: attempt, Until: until, Err: err}
		}
		// (9) notify and wait.
		if c.notify != nil {
			c.notify(Attempt{Number: attempt, Err: err, Class: class, Wait: wait})
		}
		if serr := c.sleep(ctx, wait); serr != nil || ctx.Err() != nil {
			return cancelled(ctx, attempt, until, err, serr)
		}
		waited += wait
	}
}
