// Package backoff decides how to retry: within a run (Do, with a Policy of
// jittered, growing waits) and across runs (NotBefore, a persisted gate
// that keeps a periodic job from hammering a failing CA).
//
// # Error classes
//
// Do treats an error according to its Class: transient errors are retried
// after the policy's wait, permanent ones end Do at once, rate-limited ones
// are retried no sooner than the server's Retry-After, and an ended context
// ends Do promptly. Callers mark errors with Transient, Permanent and
// RateLimited; ClassOf recognizes the marks (and cenkalti/backoff/v5's
// PermanentError and RetryAfterError), network errors (transient) and TLS
// verification failures (permanent), and treats anything else as permanent.
//
// When Do gives up it returns an error saying why (attempts exhausted, a
// permanent error, a rate limit and the time it ends, a cancellation) and
// after how many attempts; it wraps the last error of
// the operation and, after a cancellation, the context's cause, so
// errors.Is and errors.As reach both.
//
// # Relation to github.com/cenkalti/backoff/v5
//
// Do computes the sequence of waits with that package's ExponentialBackOff
// but runs its own loop rather than backoff.Retry, whose behaviour does not
// fit here: its timer cannot be injected from this package (the seam is
// unexported), so this package's tests would sleep for real; its jitter draws from a global source; it applies a
// 15-minute MaxElapsedTime unless told otherwise; its RetryAfterError carries
// no cause, so the CA's problem is lost when it gives up; and on
// cancellation it returns the context's error instead of the operation's.
// Do has its own unexported sleep seam for this package's tests (callers'
// tests that must not wait pass a Policy with no waits, Initial < 0), and it
// has no elapsed-time limit other than the wait budget. The
// marks of this package convert to that package's types through errors.As,
// so operations can be shared between the two.
//
// # Crash safety and preconditions
//
// Do keeps no state beyond one call and starts no goroutine: a crash during
// Do loses only the in-run retry count, and the next run starts afresh. The
// cross-run state (how many runs failed in a row, when the last failed, and
// the end of a rate limit, from the RateLimitedError's Retry-After) is the caller's to persist, after Do
// returns: failures+1 and the time of the failure, reset only after a
// success. A run killed during Do is then not counted; package renew
// accepts that because a killed run's order is journaled before finalize
// and finished by the next run instead of placing another. A caller without
// such a journal, whose runs could be killed again and again mid-order,
// should count the run as failed before its first attempt instead. The
// operation passed to Do must be safe to repeat after a failure.
//
// Everything in the package is safe for concurrent use.
package backoff
