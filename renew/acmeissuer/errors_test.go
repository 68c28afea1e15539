package acmeissuer

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"

	"github.com/renewkit/renewkit/backoff"
)

func problem(typ string, status int, detail string) *acme.ProblemDetails {
	return &acme.ProblemDetails{Type: problemNS + typ, HTTPStatus: status, Detail: detail}
}

func respWith(status int, retryAfter time.Duration) *respInfo {
	return &respInfo{status: status, retryAfter: retryAfter, responses: 1}
}

func TestClassify(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name       string
		ctx        context.Context
		err        error
		ri         *respInfo
		want       class
		retryAfter time.Duration
		inMessage  []string
	}{
		{name: "rateLimited 429 with Retry-After",
			err: &acme.RateLimitedError{ProblemDetails: problem("rateLimited", 429, "too many certificates"), RetryAfter: 2 * time.Minute},
			ri:  respWith(429, 2*time.Minute), want: classRateLimited, retryAfter: 2 * time.Minute,
			inMessage: []string{`certificate "www"`, "new order", "rateLimited", "HTTP 429", "too many certificates", "retry after 2m0s"}},
		{name: "rateLimited with status 503, Retry-After read from the header",
			err: problem("rateLimited", 503, "slow down"), ri: respWith(503, 30*time.Second),
			want: classRateLimited, retryAfter: 30 * time.Second},
		{name: "rateLimited without Retry-After",
			err: problem("rateLimited", 429, "x"), ri: respWith(429, 0), want: classRateLimited},
		{name: "429 HTML page",
			err: errors.New("429 ::POST :: https://ca/order-plz :: invalid character '<'"), ri: respWith(429, 0), want: classRateLimited},
		{name: "badNonce", err: &acme.NonceError{ProblemDetails: problem("badNonce", 400, "bad nonce")}, ri: respWith(400, 0), want: classTransient},
		{name: "serverInternal", err: problem("serverInternal", 500, "oops"), ri: respWith(500, 0), want: classTransient},
		{name: "serverInternal with Retry-After becomes rate-limited",
			err: problem("serverInternal", 503, "maintenance"), ri: respWith(503, time.Minute), want: classRateLimited, retryAfter: time.Minute},
		{name: "unregistered type with 5xx", err: &acme.ProblemDetails{Type: "about:blank", HTTPStatus: 502}, ri: respWith(502, 0), want: classTransient},
		{name: "HTML 503 from a proxy",
			err: errors.New("503 ::POST :: https://ca/order-plz :: invalid character '<' looking for beginning of value :: <html>"),
			ri:  respWith(503, 0), want: classTransient, inMessage: []string{"new order", "503"}},
		{name: "HTML 503 with Retry-After", err: errors.New("503 :: html"), ri: respWith(503, 7*time.Second), want: classRateLimited, retryAfter: 7 * time.Second},
		{name: "HTML 404", err: errors.New("404 :: html"), ri: respWith(404, 0), want: classPermanent},
		{name: "unauthorized", err: problem("unauthorized", 403, "no"), ri: respWith(403, 0), want: classPermanent},
		{name: "rejectedIdentifier", err: problem("rejectedIdentifier", 400, "blocked name"), ri: respWith(400, 0), want: classPermanent,
			inMessage: []string{"rejectedIdentifier", "blocked name"}},
		{name: "caa", err: problem("caa", 403, "CAA forbids"), want: classPermanent},
		{name: "dns", err: problem("dns", 400, "NXDOMAIN"), want: classPermanent},
		{name: "connection", err: problem("connection", 400, "refused"), want: classPermanent},
		{name: "malformed", err: problem("malformed", 400, "bad JWS"), ri: respWith(400, 0), want: classPermanent},
		{name: "badCSR", err: problem("badCSR", 400, "short key"), ri: respWith(400, 0), want: classPermanent},
		{name: "accountDoesNotExist", err: problem("accountDoesNotExist", 400, "gone"), ri: respWith(400, 0), want: classPermanent},
		{name: "invalidProfile", err: problem("invalidProfile", 400, "no such profile"), ri: respWith(400, 0), want: classPermanent},
		{name: "externalAccountRequired", err: problem("externalAccountRequired", 400, "eab"), ri: respWith(400, 0), want: classPermanent},
		{name: "registered type with 5xx stays permanent", err: problem("malformed", 500, "odd"), ri: respWith(500, 0), want: classPermanent},
		{name: "permanent type ignores Retry-After", err: problem("unauthorized", 403, "no"), ri: respWith(403, time.Hour), want: classPermanent, retryAfter: time.Hour},
		{name: "subproblems are named",
			err: &acme.ProblemDetails{Type: acme.RejectedIdentifierErrorType, HTTPStatus: 400, Detail: "some names",
				SubProblems: []acme.SubProblem{{Type: acme.RejectedIdentifierErrorType, Detail: "blocked", Identifier: acme.Identifier{Value: "bad.example"}}}},
			want: classPermanent, inMessage: []string{"bad.example: rejectedIdentifier blocked"}},
		{name: "userActionRequired names the instance",
			err:  &acme.ProblemDetails{Type: acme.UserActionRequiredErrorType, HTTPStatus: 403, Detail: "new terms", Instance: "https://ca/tos"},
			want: classPermanent, inMessage: []string{"https://ca/tos"}},
		{name: "wrapped problem (lego's errors.Join)",
			err: errors.Join(fmt.Errorf("authz: %w", problem("serverInternal", 500, "x"))), ri: respWith(500, 0), want: classTransient},
		{name: "connection refused", err: &url.Error{Op: "Post", URL: "https://ca", Err: syscall.ECONNREFUSED}, want: classTransient},
		{name: "reset", err: fmt.Errorf("unable to communicate: %w", syscall.ECONNRESET), want: classTransient},
		{name: "EOF mid-response", err: fmt.Errorf("read: %w", io.ErrUnexpectedEOF), want: classTransient},
		{name: "net.OpError", err: &net.OpError{Op: "dial", Err: errors.New("no route")}, want: classTransient},
		{name: "unknown error without response", err: errors.New("something"), want: classTransient},
		{name: "unusable 201 answer", err: errors.New("order identifiers have been modified by the ACME server"), ri: respWith(201, 0), want: classPermanent},
		{name: "body cut short", err: fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), ri: respWith(200, 0), want: classTransient},
		{name: "cancelled context wins", ctx: cancelled, err: problem("unauthorized", 403, "no"), ri: respWith(403, 0), want: classStop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			e, c := classify(ctx, "www", "new order", tt.err, tt.ri)
			if c != tt.want {
				t.Fatalf("class = %v, want %v (error: %v)", c, tt.want, e)
			}
			if c != classStop && e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.retryAfter)
			}
			err := wrapClass(e, c)
			for _, s := range tt.inMessage {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err.Error(), s)
				}
			}
			var got *Error
			if !errors.As(err, &got) || got != e {
				t.Errorf("errors.As(*Error) failed on %v", err)
			}
			if !errors.Is(err, tt.err) && c != classStop {
				t.Errorf("the cause is not in the chain of %v", err)
			}
			checkClass(t, err, c)
		})
	}
}

// checkClass asserts that err carries exactly the backoff class c.
func checkClass(t *testing.T, err error, c class) {
	t.Helper()
	want := map[class]backoff.Class{
		classTransient:   backoff.ClassTransient,
		classPermanent:   backoff.ClassPermanent,
		classRateLimited: backoff.ClassRateLimited,
		classStop:        backoff.ClassCancelled,
	}[c]
	if got := backoff.ClassOf(err); got != want {
		t.Errorf("backoff.ClassOf = %v, want %v: %v", got, want, err)
	}
	if errors.Is(err, backoff.ErrPermanent) != (c == classPermanent) {
		t.Errorf("errors.Is(err, backoff.ErrPermanent) = %v for class %v: %v", !(c == classPermanent), c, err)
	}
	if c == classStop && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stopped error does not match the context error: %v", err)
	}
}

func TestClassifyCancelledMatchesContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := fail(ctx, "www", "finalize", errors.New("Error generating nonce: context canceled (formatted, not wrapped)"), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("errors.Is(err, context.Canceled) = false: %v", err)
	}
	if !strings.Contains(err.Error(), "finalize") || !strings.Contains(err.Error(), "www") {
		t.Errorf("message %q does not name the step and certificate", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format("Mon, 02 Jan 2006 15:04:05 GMT"), 90 * time.Second},
		{now.Add(-time.Minute).Format("Mon, 02 Jan 2006 15:04:05 GMT"), 0},
		{"99999999999999999999", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNextWait(t *testing.T) {
	base, max := 50*time.Millisecond, 400*time.Millisecond
	tests := []struct {
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{0, 0, 0},
		{0, time.Second, 0},
		{1, 0, 50 * time.Millisecond},
		{2, 0, 100 * time.Millisecond},
		{3, 0, 200 * time.Millisecond},
		{4, 0, 400 * time.Millisecond},
		{9, 0, 400 * time.Millisecond},
		{1000, 0, 400 * time.Millisecond},
		{2, 3 * time.Second, 3 * time.Second}, // Retry-After is honoured as sent
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.attempt, "/", tt.retryAfter), func(t *testing.T) {
			if got := nextWait(tt.attempt, tt.retryAfter, base, max); got != tt.want {
				t.Errorf("nextWait = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDNS01Record(t *testing.T) {
	// RFC 8555 §8.4: the record is base64url(SHA-256(key authorization)).
	fqdn, value := dns01Record("*.example.org", "token.thumbprint")
	if fqdn != "_acme-challenge.example.org." {
		t.Errorf("fqdn = %q", fqdn)
	}
	sum := sha256.Sum256([]byte("token.thumbprint"))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); value != want {
		t.Errorf("value = %q, want %q", value, want)
	}
}
