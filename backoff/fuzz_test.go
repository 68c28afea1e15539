package backoff

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// FuzzNotBefore checks NotBefore's bounds over arbitrary inputs: no gate
// without failures; otherwise at least the base and at most the cap after
// the last failure, and never past the start of the last sixth unless only
// the base interval is left.
func FuzzNotBefore(f *testing.F) {
	day := int64(24 * time.Hour)
	f.Add(1, int64(60*day), int64(0), int64(90*day))
	f.Add(8, int64(74*day), int64(0), int64(90*day))
	f.Add(7, int64(5*day), int64(0), int64(6*day))
	f.Add(0, int64(0), int64(0), int64(0))
	f.Add(math.MaxInt, int64(math.MaxInt64), int64(math.MinInt64), int64(math.MaxInt64))
	f.Add(3, int64(-5), int64(10), int64(0))
	f.Fuzz(func(t *testing.T, failures int, last, nb, na int64) {
		lastFailure := t0.Add(time.Duration(last))
		certNotBefore := t0.Add(time.Duration(nb))
		certNotAfter := t0.Add(time.Duration(na))
		got := NotBefore(failures, lastFailure, certNotBefore, certNotAfter)
		if failures <= 0 {
			if !got.IsZero() {
				t.Fatalf("no failures but gate %v", got)
			}
			return
		}
		d := got.Sub(lastFailure)
		if d < crossRunMinBase || d > crossRunCap {
			t.Fatalf("delay %v outside [%v, %v]", d, crossRunMinBase, crossRunCap)
		}
		lifetime := certNotAfter.Sub(certNotBefore)
		if lifetime > 0 {
			base := min(crossRunBase, max(lifetime/100, crossRunMinBase))
			lastSixth := certNotAfter.Add(-lifetime / 6)
			if got.After(lastSixth) && d != base {
				t.Fatalf("past the last sixth (%v) by more than the base: %v after %v", lastSixth, d, lastFailure)
			}
		}
	})
}

// FuzzDo runs Do with arbitrary policies against an operation that always
// fails transiently or rate-limited, and checks that attempts never exceed
// Retries+1, that no wait exceeds Max (unless stretched by Retry-After) and
// that the total wait stays within the budget.
func FuzzDo(f *testing.F) {
	f.Add(0, int64(0), 0.0, int64(0), 0.0, 0.5, int64(0), false)
	f.Add(5, int64(time.Second), 2.0, int64(10*time.Second), 0.5, 0.99, int64(time.Minute), true)
	f.Add(-3, int64(-1), math.NaN(), int64(-1), -1.0, 1.0, int64(-1), true)
	f.Add(40, int64(math.MaxInt64), math.Inf(1), int64(math.MaxInt64), math.Inf(1), math.NaN(), int64(math.MaxInt64), false)
	f.Fuzz(func(t *testing.T, retries int, initial int64, mult float64, maxWait int64, jitter, u float64, hint int64, limited bool) {
		p := Policy{Retries: retries % 64, Initial: time.Duration(initial), Multiplier: mult, Max: time.Duration(maxWait), Jitter: jitter}
		n := p.normalized()
		clock := newFakeClock()
		calls := 0
		errOp := errors.New("fail")
		err := Do(context.Background(), p, func(context.Context) error {
			calls++
			if limited {
				return RateLimited(errOp, time.Duration(hint))
			}
			return Transient(errOp)
		}, clock.opts(withRand(func() float64 { return u }))...)
		var se *gaveUp
		if !errors.As(err, &se) || !errors.Is(err, errOp) {
			t.Fatalf("Do = %v", err)
		}
		if calls > n.Retries+1 || se.Attempts != calls {
			t.Fatalf("%d calls (gaveUp says %d) with %d retries", calls, se.Attempts, n.Retries)
		}
		var total time.Duration
		for _, w := range clock.Waits() {
			if w < 0 || (w > n.Max && !(limited && w == time.Duration(hint))) {
				t.Fatalf("wait %v outside [0, %v]", w, n.Max)
			}
			total = addSat(total, w)
		}
		if total > p.Budget() {
			t.Fatalf("waited %v, over the budget %v", total, p.Budget())
		}
	})
}
