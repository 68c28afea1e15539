package backoff

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	cb "github.com/cenkalti/backoff/v5"
)

// hinted converts to a cenkalti RetryAfterError through errors.As, the way
// the acme-stack notes suggest keeping a cause with that package.
type hinted struct{ err error }

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }
func (h hinted) As(target any) bool {
	if t, ok := target.(**cb.RetryAfterError); ok {
		*t = &cb.RetryAfterError{Duration: 7 * time.Second}
		return true
	}
	return false
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "deadline reached" }
func (timeoutErr) Timeout() bool { return true }

func TestClassOf(t *testing.T) {
	plain := errors.New("something odd")
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	urlErr := func(err error) error { return &url.Error{Op: "Post", URL: "https://ca.test/acme/new-order", Err: err} }
	verify := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	tests := []struct {
		name string
		err  error
		want Class
		hint time.Duration
	}{
		{"nil", nil, ClassNone, 0},
		{"Transient", Transient(plain), ClassTransient, 0},
		{"Permanent", Permanent(plain), ClassPermanent, 0},
		{"RateLimited", RateLimited(plain, time.Minute), ClassRateLimited, time.Minute},
		{"wrapped mark", fmt.Errorf("order: %w", Transient(plain)), ClassTransient, 0},
		{"outermost mark wins", Permanent(Transient(plain)), ClassPermanent, 0},
		{"outermost mark wins, other way", Transient(Permanent(plain)), ClassTransient, 0},
		{"sentinel wrapped", fmt.Errorf("config: %w", ErrPermanent), ClassPermanent, 0},
		{"joined: first mark found", errors.Join(plain, RateLimited(plain, time.Second)), ClassRateLimited, time.Second},
		{"cenkalti Permanent", cb.Permanent(plain), ClassPermanent, 0},
		{"cenkalti RetryAfter", cb.RetryAfter(3), ClassRateLimited, 3 * time.Second},
		{"As into cenkalti RetryAfter", fmt.Errorf("x: %w", hinted{plain}), ClassRateLimited, 7 * time.Second},
		{"context.Canceled", context.Canceled, ClassCancelled, 0},
		{"context.DeadlineExceeded wrapped", fmt.Errorf("poll: %w", context.DeadlineExceeded), ClassCancelled, 0},
		{"url timeout", urlErr(timeoutErr{}), ClassTransient, 0},
		{"url + ctx deadline (attempt timeout)", urlErr(context.DeadlineExceeded), ClassTransient, 0},
		{"url + ctx canceled", urlErr(context.Canceled), ClassCancelled, 0},
		{"connection refused", urlErr(dial(syscall.ECONNREFUSED)), ClassTransient, 0},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, ClassTransient, 0},
		{"bare ECONNRESET", fmt.Errorf("read: %w", syscall.ECONNRESET), ClassTransient, 0},
		{"bare EPIPE", syscall.EPIPE, ClassTransient, 0},
		{"other errno", syscall.EACCES, ClassPermanent, 0},
		{"DNS failure", &net.DNSError{Err: "server misbehaving", Name: "ca.test", IsTemporary: true}, ClassTransient, 0},
		{"os deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), ClassTransient, 0},
		{"timeout method", timeoutErr{}, ClassTransient, 0},
		{"EOF mid-response", urlErr(io.ErrUnexpectedEOF), ClassTransient, 0},
		{"bare EOF", io.EOF, ClassTransient, 0},
		{"unknown error inside url.Error", urlErr(errors.New("http2: GOAWAY")), ClassTransient, 0},
		{"TLS verification", urlErr(verify), ClassPermanent, 0},
		{"hostname mismatch", urlErr(x509.HostnameError{Host: "ca.test"}), ClassPermanent, 0},
		{"expired CA certificate", x509.CertificateInvalidError{Reason: x509.Expired}, ClassPermanent, 0},
		{"mark beats network", Permanent(urlErr(dial(syscall.ECONNREFUSED))), ClassPermanent, 0},
		{"unknown", plain, ClassPermanent, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, hint := classify(tt.err)
			if c != tt.want || hint != tt.hint {
				t.Fatalf("classify(%v) = %v, %v; want %v, %v", tt.err, c, hint, tt.want, tt.hint)
			}
			if ClassOf(tt.err) != tt.want {
				t.Fatalf("ClassOf disagrees with classify")
			}
		})
	}
}

func TestMarks(t *testing.T) {
	cause := errors.New("cause")
	tests := []struct {
		err   error
		class Class
		text  string
	}{
		{Transient(cause), ClassTransient, "cause"},
		{Permanent(cause), ClassPermanent, "cause"},
		{RateLimited(cause, 90*time.Second), ClassRateLimited, "cause (retry after 1m30s)"},
		{RateLimited(cause, 0), ClassRateLimited, "cause"},
		{&RateLimitedError{RetryAfter: time.Second}, ClassRateLimited, "rate limited (retry after 1s)"},
	}
	for _, tt := range tests {
		if got := ClassOf(tt.err); got != tt.class {
			t.Errorf("ClassOf(%v) = %v, want %v", tt.err, got, tt.class)
		}
		if errors.Is(tt.err, ErrPermanent) != (tt.class == ClassPermanent) {
			t.Errorf("errors.Is(%v, ErrPermanent) = %v", tt.err, tt.class != ClassPermanent)
		}
		if tt.err.Error() != tt.text {
			t.Errorf("Error() = %q, want %q", tt.err, tt.text)
		}
		if (tt.err.(interface{ Unwrap() error }).Unwrap() == cause) != (tt.text != "rate limited (retry after 1s)") {
			t.Errorf("%v does not unwrap to its cause", tt.err)
		}
	}
	for _, f := range []func(error) error{Transient, Permanent, func(err error) error { return RateLimited(err, time.Second) }} {
		if f(nil) != nil {
			t.Error("marking nil did not return nil")
		}
	}
}

// TestCenkaltiInterop checks that this package's marks steer
// cenkalti/backoff's Retry too.
func TestCenkaltiInterop(t *testing.T) {
	cause := errors.New("cause")
	t.Run("Permanent stops Retry", func(t *testing.T) {
		calls := 0
		_, err := cb.Retry(t.Context(), func() (int, error) { calls++; return 0, Permanent(cause) },
			cb.WithBackOff(&cb.ZeroBackOff{}), cb.WithMaxTries(5))
		if calls != 1 || !errors.Is(err, cause) {
			t.Fatalf("calls %d, err %v", calls, err)
		}
	})
	t.Run("RateLimited sets Retry's wait", func(t *testing.T) {
		var waits []time.Duration
		calls := 0
		_, err := cb.Retry(t.Context(), func() (int, error) {
			calls++
			if calls == 1 {
				return 0, RateLimited(cause, time.Millisecond)
			}
			return 1, nil
		}, cb.WithBackOff(&cb.ZeroBackOff{}), cb.WithNotify(func(_ error, d time.Duration) { waits = append(waits, d) }))
		if err != nil || len(waits) != 1 || waits[0] != time.Millisecond {
			t.Fatalf("err %v, waits %v", err, waits)
		}
	})
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{ClassNone: "none", ClassTransient: "transient", ClassPermanent: "permanent",
		ClassRateLimited: "rate-limited", ClassCancelled: "cancelled", 42: "Class(42)"} {
		if c.String() != want {
			t.Errorf("Class(%d) = %q, want %q", int(c), c, want)
		}
	}
}
