package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var errFlaky = errors.New("503 from the CA")

// TestDefaultPolicyWaits shows that 3 retries at the default policy wait
// 10 s, 30 s and 90 s, each within ±20 %.
func TestDefaultPolicyWaits(t *testing.T) {
	nominal := []time.Duration{10 * time.Second, 30 * time.Second, 90 * time.Second}
	tests := []struct {
		name   string
		random Option
		want   []time.Duration // nil: only the ±20 % range is checked
	}{
		{"lowest jitter", constRand(0), []time.Duration{8 * time.Second, 24 * time.Second, 72 * time.Second}},
		{"no offset", constRand(0.5), nominal},
		{"highest jitter", constRand(1), []time.Duration{12 * time.Second, 36 * time.Second, 108 * time.Second}},
		{"seeded source", withRand(rand.New(rand.NewPCG(7, 7)).Float64), nil},
		{"default source", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			op, calls := failing(Transient(errFlaky))
			err := Do(t.Context(), Policy{}, op, clock.opts(tt.random)...)
			se := wantStop(t, err, stopExhausted, 4)
			if *calls != 4 {
				t.Fatalf("op ran %d times, want 4", *calls)
			}
			if !errors.Is(se, errFlaky) {
				t.Fatalf("gaveUp does not wrap the last error: %v", se)
			}
			waits := clock.Waits()
			if len(waits) != 3 {
				t.Fatalf("waits = %v, want 3", waits)
			}
			if tt.want != nil && !slices.Equal(waits, tt.want) {
				t.Fatalf("waits = %v, want %v", waits, tt.want)
			}
			for i, w := range waits {
				lo, hi := nominal[i]*8/10, nominal[i]*12/10
				if w < lo || w > hi {
					t.Errorf("wait %d = %v, outside [%v, %v]", i+1, w, lo, hi)
				}
			}
		})
	}
}

func TestDoSucceeds(t *testing.T) {
	clock := newFakeClock()
	op, calls := failing(Transient(errFlaky), Transient(errFlaky), nil)
	if err := Do(t.Context(), Default(), op, clock.opts(constRand(0.5))...); err != nil {
		t.Fatalf("Do = %v, want nil", err)
	}
	if *calls != 3 || !slices.Equal(clock.Waits(), []time.Duration{10 * time.Second, 30 * time.Second}) {
		t.Fatalf("calls %d, waits %v", *calls, clock.Waits())
	}
}

func TestDoPermanentOnce(t *testing.T) {
	for _, err := range []error{
		Permanent(errFlaky),
		errors.New("unclassified: treated as permanent"),
	} {
		t.Run(err.Error(), func(t *testing.T) {
			clock := newFakeClock()
			op, calls := failing(err)
			got := Do(t.Context(), Default(), op, clock.opts()...)
			wantStop(t, got, stopPermanent, 1)
			if *calls != 1 || len(clock.Waits()) != 0 {
				t.Fatalf("calls %d, waits %v: want 1 call, no wait", *calls, clock.Waits())
			}
			if !errors.Is(got, err) {
				t.Fatalf("%v does not wrap %v", got, err)
			}
		})
	}
}

func TestDoAttemptsNeverExceedRetriesPlusOne(t *testing.T) {
	for _, tt := range []struct{ retries, attempts int }{{-1, 1}, {0, 4}, {1, 2}, {2, 3}, {5, 6}, {12, 13}} {
		t.Run(strings.ReplaceAll(time.Duration(tt.retries).String(), "ns", ""), func(t *testing.T) {
			clock := newFakeClock()
			op, calls := failing(Transient(errFlaky))
			err := Do(t.Context(), Policy{Retries: tt.retries}, op, clock.opts()...)
			wantStop(t, err, stopExhausted, tt.attempts)
			if *calls != tt.attempts || len(clock.Waits()) != tt.attempts-1 {
				t.Fatalf("calls %d, waits %d; want %d and %d", *calls, len(clock.Waits()), tt.attempts, tt.attempts-1)
			}
		})
	}
}

func TestDoRetryAfterHonoured(t *testing.T) {
	tests := []struct {
		name  string
		hint  time.Duration
		waits []time.Duration
	}{
		{"hint longer than the backoff", 60 * time.Second, []time.Duration{60 * time.Second}},
		{"hint shorter than the backoff", 3 * time.Second, []time.Duration{10 * time.Second}},
		{"no hint", 0, []time.Duration{10 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			op, calls := failing(RateLimited(errFlaky, tt.hint), nil)
			var seen []Attempt
			err := Do(t.Context(), Default(), op, clock.opts(constRand(0.5), WithNotify(func(a Attempt) { seen = append(seen, a) }))...)
			if err != nil || *calls != 2 {
				t.Fatalf("Do = %v after %d calls", err, *calls)
			}
			if !slices.Equal(clock.Waits(), tt.waits) {
				t.Fatalf("waits %v, want %v", clock.Waits(), tt.waits)
			}
			if len(seen) != 1 || seen[0].Class != ClassRateLimited || seen[0].Wait != tt.waits[0] || seen[0].Number != 1 {
				t.Fatalf("notified %+v", seen)
			}
		})
	}
}

func TestDoRateLimitBeyondBudget(t *testing.T) {
	clock := newFakeClock()
	op, calls := failing(RateLimited(errFlaky, 3*time.Hour))
	err := Do(t.Context(), Default(), op, clock.opts()...)
	se := wantStop(t, err, stopRateLimited, 1)
	if *calls != 1 || len(clock.Waits()) != 0 {
		t.Fatalf("calls %d, waits %v: want to give up at once", *calls, clock.Waits())
	}
	if want := t0.Add(3 * time.Hour); !se.Until.Equal(want) {
		t.Fatalf("Until = %v, want %v", se.Until, want)
	}
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 3*time.Hour || !errors.Is(err, errFlaky) {
		t.Fatalf("cause not reachable through %v", err)
	}
	if !strings.Contains(err.Error(), "rate limited until 2026-01-01T03:00:00Z") {
		t.Fatalf("message %q does not say until when", err)
	}
}

func TestDoRateLimitedToTheEnd(t *testing.T) {
	clock := newFakeClock()
	op, calls := failing(RateLimited(errFlaky, time.Second))
	err := Do(t.Context(), Default(), op, clock.opts(constRand(0.5))...)
	se := wantStop(t, err, stopRateLimited, 4)
	if *calls != 4 {
		t.Fatalf("calls %d", *calls)
	}
	// 10+30+90 s waited, then the last refusal asks for one more second.
	if want := t0.Add(131 * time.Second); !se.Until.Equal(want) {
		t.Fatalf("Until = %v, want %v", se.Until, want)
	}
}

func TestDoBudget(t *testing.T) {
	tests := []struct {
		name    string
		errs    []error
		opts    []Option
		reason  stopReason
		attempt int
		waits   []time.Duration
	}{
		{
			"Retry-After eats the budget, then a transient wait does not fit",
			[]error{RateLimited(errFlaky, 60*time.Second), Transient(errFlaky)},
			[]Option{withMaxWait(100 * time.Second)},
			stopExhausted, 3, []time.Duration{60 * time.Second, 30 * time.Second},
		},
		{
			"second Retry-After exceeds what is left",
			[]error{RateLimited(errFlaky, 100*time.Second), RateLimited(errFlaky, 100*time.Second)},
			nil, // default budget 156 s
			stopRateLimited, 2, []time.Duration{100 * time.Second},
		},
		{
			"zero budget: no waiting at all",
			[]error{Transient(errFlaky)},
			[]Option{withMaxWait(0)},
			stopExhausted, 1, nil,
		},
		{
			"a wait exactly filling the budget is made",
			[]error{RateLimited(errFlaky, 156*time.Second), nil},
			nil,
			0, 2, []time.Duration{156 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			op, calls := failing(tt.errs...)
			err := Do(t.Context(), Default(), op, clock.opts(append(tt.opts, constRand(0.5))...)...)
			if tt.reason == 0 {
				if err != nil {
					t.Fatalf("Do = %v, want success", err)
				}
			} else {
				wantStop(t, err, tt.reason, tt.attempt)
			}
			if *calls != tt.attempt || !slices.Equal(clock.Waits(), tt.waits) {
				t.Fatalf("calls %d, waits %v; want %d, %v", *calls, clock.Waits(), tt.attempt, tt.waits)
			}
		})
	}
}

// TestDoCancelDuringWait cancels a real 10 s wait and checks that Do returns
// within milliseconds, with both the context error and the last operation
// error reachable.
func TestDoCancelDuringWait(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	waiting := make(chan struct{})
	op, calls := failing(Transient(errFlaky))
	done := make(chan error, 1)
	go func() {
		done <- Do(ctx, Policy{Initial: 10 * time.Second, Jitter: -1}, op,
			WithNotify(func(a Attempt) {
				if a.Wait != 10*time.Second {
					t.Errorf("wait %v, want 10s", a.Wait)
				}
				close(waiting)
			}))
	}()
	<-waiting
	start := time.Now()
	cancel()
	err := <-done
	elapsed := time.Since(start)
	t.Logf("returned %v after cancel", elapsed)
	if elapsed > 50*time.Millisecond {
		t.Errorf("Do returned %v after the cancel, want < 50ms", elapsed)
	}
	se := wantStop(t, err, stopCancelled, 1)
	if *calls != 1 {
		t.Fatalf("calls %d", *calls)
	}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errFlaky) || ClassOf(se.Err) != ClassTransient {
		t.Fatalf("%v: want both context.Canceled and the last error reachable", err)
	}
	if se.Err == nil || se.Cause == nil {
		t.Fatalf("gaveUp %+v", se)
	}
}

func TestDoDeadlineDuringWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	op, _ := failing(Transient(errFlaky))
	start := time.Now()
	err := Do(ctx, Default(), op)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("Do took %v", elapsed)
	}
	wantStop(t, err, stopCancelled, 1)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errFlaky) {
		t.Fatalf("%v: want DeadlineExceeded and the last error", err)
	}
}

func TestDoCancelled(t *testing.T) {
	cause := errors.New("shutting down")
	t.Run("before the first attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		cancel(cause)
		op, calls := failing(nil)
		err := Do(ctx, Default(), op)
		wantStop(t, err, stopCancelled, 0)
		if *calls != 0 || !errors.Is(err, cause) || !errors.Is(err, context.Canceled) {
			t.Fatalf("calls %d, err %v", *calls, err)
		}
	})
	t.Run("during an attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		clock := newFakeClock()
		calls := 0
		err := Do(ctx, Default(), func(ctx context.Context) error {
			calls++
			cancel(cause)
			return errors.New("request aborted") // unclassified, but the ctx decides
		}, clock.opts()...)
		se := wantStop(t, err, stopCancelled, 1)
		if calls != 1 || !errors.Is(err, cause) || se.Err == nil || se.Err.Error() != "request aborted" {
			t.Fatalf("calls %d, err %v", calls, err)
		}
		if want := "backoff: cancelled after 1 attempt: shutting down; last error: request aborted"; err.Error() != want {
			t.Fatalf("message %q, want %q", err, want)
		}
	})
	t.Run("op returns the context error", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		err := Do(ctx, Default(), func(ctx context.Context) error { cancel(); return ctx.Err() })
		wantStop(t, err, stopCancelled, 1)
		if want := "backoff: cancelled after 1 attempt: context canceled"; err.Error() != want {
			t.Fatalf("message %q, want %q", err, want)
		}
	})
}

func TestDoInnerContextErrors(t *testing.T) {
	t.Run("an attempt's own deadline is transient", func(t *testing.T) {
		clock := newFakeClock()
		op, calls := failing(context.DeadlineExceeded, nil)
		if err := Do(t.Context(), Default(), op, clock.opts()...); err != nil || *calls != 2 {
			t.Fatalf("Do = %v after %d calls", err, *calls)
		}
	})
	t.Run("an inner cancellation is permanent", func(t *testing.T) {
		clock := newFakeClock()
		op, calls := failing(context.Canceled)
		err := Do(t.Context(), Default(), op, clock.opts()...)
		wantStop(t, err, stopPermanent, 1)
		if *calls != 1 {
			t.Fatalf("calls %d", *calls)
		}
	})
}

func TestDoNotify(t *testing.T) {
	clock := newFakeClock()
	op, _ := failing(Transient(errFlaky), RateLimited(errFlaky, time.Minute), errors.New("boom"))
	var seen []Attempt
	err := Do(t.Context(), Default(), op, clock.opts(constRand(0.5), WithNotify(func(a Attempt) { seen = append(seen, a) }))...)
	wantStop(t, err, stopPermanent, 3)
	want := []Attempt{
		{Number: 1, Class: ClassTransient, Wait: 10 * time.Second},
		{Number: 2, Class: ClassRateLimited, Wait: 60 * time.Second},
	}
	if len(seen) != len(want) {
		t.Fatalf("notified %d times, want %d", len(seen), len(want))
	}
	for i := range want {
		if seen[i].Number != want[i].Number || seen[i].Class != want[i].Class || seen[i].Wait != want[i].Wait || seen[i].Err == nil {
			t.Errorf("notify %d = %+v, want %+v", i, seen[i], want[i])
		}
	}
}

func TestStopErrorMessages(t *testing.T) {
	tests := []struct {
		err  *gaveUp
		want string
	}{
		{&gaveUp{Reason: stopExhausted, Attempts: 4, Err: errFlaky}, "backoff: giving up after 4 attempts: 503 from the CA"},
		{&gaveUp{Reason: stopPermanent, Attempts: 1, Err: errFlaky}, "backoff: permanent error after 1 attempt: 503 from the CA"},
		{&gaveUp{Reason: stopRateLimited, Attempts: 2, Until: t0, Err: errFlaky}, "backoff: rate limited until 2026-01-01T00:00:00Z, giving up after 2 attempts: 503 from the CA"},
		{&gaveUp{Reason: stopRateLimited, Attempts: 1, Err: errFlaky}, "backoff: rate limited, giving up after 1 attempt: 503 from the CA"},
		{&gaveUp{Reason: stopCancelled, Attempts: 0, Cause: context.Canceled}, "backoff: cancelled after 0 attempts: context canceled"},
		{&gaveUp{Reason: stopCancelled, Attempts: 2, Err: errFlaky, Cause: context.DeadlineExceeded}, "backoff: cancelled after 2 attempts: context deadline exceeded; last error: 503 from the CA"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q\n want %q", got, tt.want)
		}
	}
	for r, want := range map[stopReason]string{stopExhausted: "exhausted", stopPermanent: "permanent", stopRateLimited: "rate-limited", stopCancelled: "cancelled", 0: "unknown", 9: "stopReason(9)"} {
		if r.String() != want {
			t.Errorf("stopReason(%d) = %q, want %q", int(r), r, want)
		}
	}
}

// TestDoBudgetOfNormalizedPolicy reproduces a FuzzDo finding: Do computed
// its budget by normalizing an already normalized policy, so "no wait"
// (Initial < 0) and "no jitter" became the 10 s and ±20 % defaults and a
// Retry-After was waited out against a budget that should have been zero.
func TestDoBudgetOfNormalizedPolicy(t *testing.T) {
	clock := newFakeClock()
	op, calls := failing(RateLimited(errFlaky, 46*time.Nanosecond))
	err := Do(t.Context(), Policy{Retries: 24, Initial: -1, Max: 66, Jitter: 40}, op, clock.opts()...)
	wantStop(t, err, stopRateLimited, 1)
	if *calls != 1 || len(clock.Waits()) != 0 {
		t.Fatalf("calls %d, waits %v: the budget is 0, no wait fits", *calls, clock.Waits())
	}
}
