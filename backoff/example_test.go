package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/renewkit/renewkit/backoff"
)

// Retrying a flaky call. The policy is the default one scaled down to
// milliseconds, without jitter so that the waits printed are the nominal
// ones (the default's 10 s and 30 s, in ms).
func ExampleDo() {
	attempt := 0
	order := func(ctx context.Context) error {
		attempt++
		if attempt < 3 {
			return backoff.Transient(fmt.Errorf("new-order: HTTP 503 (attempt %d)", attempt))
		}
		return nil
	}
	p := backoff.Policy{Initial: 10 * time.Millisecond, Jitter: -1}
	err := backoff.Do(context.Background(), p, order,
		backoff.WithNotify(func(a backoff.Attempt) {
			fmt.Printf("attempt %d failed (%s): %v; waiting %v\n", a.Number, a.Class, a.Err, a.Wait)
		}),
	)
	fmt.Println("err:", err)
	// Output:
	// attempt 1 failed (transient): new-order: HTTP 503 (attempt 1); waiting 10ms
	// attempt 2 failed (transient): new-order: HTTP 503 (attempt 2); waiting 30ms
	// err: <nil>
}

// A rate limit whose Retry-After exceeds the wait budget ends Do at once;
// the error says until when, and wraps the CA's problem.
func ExampleDo_rateLimited() {
	problem := errors.New("urn:ietf:params:acme:error:rateLimited: too many certificates")
	err := backoff.Do(context.Background(), backoff.Default(),
		func(ctx context.Context) error { return backoff.RateLimited(problem, 3*time.Hour) },
	)
	var limited *backoff.RateLimitedError
	if errors.As(err, &limited) {
		fmt.Println("retry after", limited.RetryAfter)
	}
	fmt.Println(errors.Is(err, problem))
	// Output:
	// retry after 3h0m0s
	// true
}

func ExampleClassOf() {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, err := range []error{
		refused,
		backoff.Permanent(errors.New("rejectedIdentifier")),
		backoff.RateLimited(errors.New("429"), time.Minute),
		context.Canceled,
		errors.New("something unexpected"),
	} {
		fmt.Printf("%-12s %v\n", backoff.ClassOf(err), err)
	}
	// Output:
	// transient    dial tcp: connection refused
	// permanent    rejectedIdentifier
	// rate-limited 429 (retry after 1m0s)
	// cancelled    context canceled
	// permanent    something unexpected
}

// The cross-run gate for a 90-day certificate whose renewals keep failing
// from day 60, when it became due.
func ExampleNotBefore() {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	expires := issued.AddDate(0, 0, 90)
	last := issued.AddDate(0, 0, 60)
	for failures := 1; failures <= 7; failures++ {
		next := backoff.NotBefore(failures, last, issued, expires)
		fmt.Printf("%d failures: next try %v after the last\n", failures, next.Sub(last))
	}
	// Output:
	// 1 failures: next try 1h0m0s after the last
	// 2 failures: next try 2h0m0s after the last
	// 3 failures: next try 4h0m0s after the last
	// 4 failures: next try 8h0m0s after the last
	// 5 failures: next try 16h0m0s after the last
	// 6 failures: next try 24h0m0s after the last
	// 7 failures: next try 24h0m0s after the last
}

func ExamplePolicy_Budget() {
	fmt.Println(backoff.Default().Budget())
	fmt.Println(backoff.Policy{Retries: 5, Initial: time.Second, Multiplier: 2, Jitter: -1}.Budget())
	// Output:
	// 2m36s
	// 31s
}
