package backoff

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"

	cb "github.com/cenkalti/backoff/v5"
)

// Class is how Do treats an error.
type Class int

// The error classes.
const (
	// ClassNone is the class of a nil error.
	ClassNone Class = iota
	// ClassTransient: retry after the policy's wait.
	ClassTransient
	// ClassPermanent: retrying cannot help; stop at once.
	ClassPermanent
	// ClassRateLimited: retry, but not before the server's Retry-After.
	ClassRateLimited
	// ClassCancelled: a context was cancelled or its deadline passed.
	ClassCancelled
)

var classNames = [...]string{"none", "transient", "permanent", "rate-limited", "cancelled"}

// String returns a short lower-case name, suitable as a metric label.
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "Class(" + strconv.Itoa(int(c)) + ")"
	}
	return classNames[c]
}

// MarshalText implements encoding.TextMarshaler with String.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ErrPermanent is matched (with errors.Is) by an error marked with
// Permanent. Wrapping it (fmt.Errorf("...: %w", ErrPermanent)) also marks an
// error permanent, for error types that cannot call Permanent themselves.
// The other classes have no sentinel: ClassOf tells any error's class, and
// errors.As finds a *RateLimitedError with its Retry-After.
var ErrPermanent = errors.New("permanent error")

// Transient marks err as transient: Do retries it. It returns nil for nil.
// The message is err's.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &classError{class: ClassTransient, err: err}
}

// Permanent marks err as permanent: Do returns at once. It returns nil for
// nil. The message is err's. The result is also seen as a
// *backoff.PermanentError of github.com/cenkalti/backoff/v5 by errors.As, so
// an operation written for this package stops that package's Retry too.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classError{class: ClassPermanent, err: err}
}

// RateLimited marks err as a rate-limit refusal after which the server asks
// to wait retryAfter (0 or less: no hint). It returns a *RateLimitedError, or
// nil for a nil err.
func RateLimited(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	return &RateLimitedError{Err: err, RetryAfter: retryAfter}
}

// RateLimitedError is an error the server refused because of a rate limit,
// with the wait it asked for (an HTTP Retry-After). Unlike
// cenkalti/backoff's RetryAfterError it keeps the cause. errors.As also
// finds a *backoff.RetryAfterError of cenkalti/backoff/v5 in it, so that
// package's Retry honours the hint too. Like any error value it should not
// be modified once returned.
type RateLimitedError struct {
	Err        error
	RetryAfter time.Duration // 0: no hint
}

// Error returns the cause's message and the hint.
func (e *RateLimitedError) Error() string {
	msg := "rate limited"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	if e.RetryAfter > 0 {
		msg += " (retry after " + e.RetryAfter.String() + ")"
	}
	return msg
}

// Unwrap returns the cause.
func (e *RateLimitedError) Unwrap() error { return e.Err }

// As fills a **backoff.RetryAfterError of cenkalti/backoff/v5.
func (e *RateLimitedError) As(target any) bool {
	if t, ok := target.(**cb.RetryAfterError); ok {
		*t = &cb.RetryAfterError{Duration: max(e.RetryAfter, 0)}
		return true
	}
	return false
}

// classError is the mark of Transient and Permanent.
type classError struct {
	class Class
	err   error
}

func (e *classError) Error() string { return e.err.Error() }
func (e *classError) Unwrap() error { return e.err }

func (e *classError) Is(target error) bool {
	return target == ErrPermanent && e.class == ClassPermanent
}

func (e *classError) As(target any) bool {
	if t, ok := target.(**cb.PermanentError); ok && e.class == ClassPermanent {
		*t = &cb.PermanentError{Err: e.err}
		return true
	}
	return false
}

// ClassOf returns the class of err, that is how Do treats it:
//
//  1. nil: ClassNone.
//  2. An explicit mark, the outermost one in err's tree winning: Transient,
//     Permanent, RateLimited or ErrPermanent; cenkalti/backoff/v5's
//     *PermanentError (permanent) and *RetryAfterError (rate-limited).
//  3. context.Canceled and context.DeadlineExceeded: ClassCancelled. (Do
//     stops on these only when its own context has ended; see Do.)
//  4. TLS certificate verification failures (unknown authority, name
//     mismatch, expired or invalid certificate): ClassPermanent, a
//     configuration problem that retrying will not fix.
//  5. Network errors: a timeout (*url.Error, net.Error or anything with
//     Timeout() true), any other net.Error (refused, reset, DNS failure),
//     syscall errors ECONNREFUSED, ECONNRESET, ECONNABORTED, ETIMEDOUT,
//     EHOSTUNREACH, ENETUNREACH, ENETDOWN, EPIPE, and io.EOF or
//     io.ErrUnexpectedEOF (a response cut short): ClassTransient. So is any
//     other error inside a *url.Error (a failed HTTP exchange).
//  6. Anything else: ClassPermanent.
//
// Rule 6 is deliberate. An unrecognized error is more likely a bug or a
// refusal than a glitch, and blind retries of refusals cost real quota: an
// ACME CA counts failed validations per hour (Let's Encrypt allows 5 per
// account, identifier and hour), so three automatic retries of an
// unclassified validation failure would burn most of it. Callers that know
// an error is worth retrying say so with Transient; the renew package maps
// ACME problem types this way.
func ClassOf(err error) Class {
	c, _ := classify(err)
	return c
}

// classify returns err's class and, for ClassRateLimited, the server's hint.
func classify(err error) (Class, time.Duration) {
	if err == nil {
		return ClassNone, 0
	}
	var (
		class   Class
		hint    time.Duration
		inHTTP  bool
		network bool // first network-looking node, used if nothing more specific is found
	)
	walk(err, func(e error) bool {
		switch x := e.(type) {
		case *classError:
			class = x.class
			return true
		case *RateLimitedError:
			class, hint = ClassRateLimited, x.RetryAfter
			return true
		case *cb.PermanentError:
			class = ClassPermanent
			return true
		case *cb.RetryAfterError:
			class, hint = ClassRateLimited, x.Duration
			return true
		case *tls.CertificateVerificationError, x509.UnknownAuthorityError, x509.HostnameError,
			x509.CertificateInvalidError, *x509.UnknownAuthorityError, *x509.HostnameError,
			*x509.CertificateInvalidError:
			class = ClassPermanent
			return true
		case *url.Error:
			if x.Timeout() {
				class = ClassTransient
				return true
			}
			inHTTP = true
			return false
		case syscall.Errno:
			if transientErrno(x) {
				network = true
			}
			return false
		}
		switch e {
		case ErrPermanent:
			class = ClassPermanent
			return true
		case context.Canceled, context.DeadlineExceeded:
			class = ClassCancelled
			return true
		case io.EOF, io.ErrUnexpectedEOF:
			network = true
			return false
		}
		if a, ok := e.(interface{ As(any) bool }); ok {
			if c, h, ok := classifyAs(a); ok {
				class, hint = c, h
				return true
			}
		}
		if t, ok := e.(interface{ Timeout() bool }); ok && t.Timeout() {
			network = true
		}
		if _, ok := e.(net.Error); ok {
			network = true
		}
		return false // keep looking inside: a mark or a TLS error may be deeper
	})
	switch {
	case class != ClassNone:
		return class, hint
	case network || inHTTP:
		return ClassTransient, 0
	}
	return ClassPermanent, 0
}

// classifyAs asks an error with an As method for the marks it converts to.
func classifyAs(a interface{ As(any) bool }) (Class, time.Duration, bool) {
	var rl *RateLimitedError
	if a.As(&rl) && rl != nil {
		return ClassRateLimited, rl.RetryAfter, true
	}
	var ra *cb.RetryAfterError
	if a.As(&ra) && ra != nil {
		return ClassRateLimited, ra.Duration, true
	}
	var pe *cb.PermanentError
	if a.As(&pe) && pe != nil {
		return ClassPermanent, 0, true
	}
	return ClassNone, 0, false
}

func transientErrno(e syscall.Errno) bool {
	switch e {
	case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.ETIMEDOUT,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN, syscall.EPIPE:
		return true
	}
	return false
}

// walk visits err's tree depth-first, outermost first, as errors.Is does,
// until visit returns true.
func walk(err error, visit func(error) bool) bool {
	for err != nil {
		if visit(err) {
			return true
		}
		switch x := err.(type) {
		case interface{ Unwrap() error }:
			err = x.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				if walk(e, visit) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}
