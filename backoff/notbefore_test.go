package backoff

import (
	"math"
	"testing"
	"time"
)

// TestNotBefore follows the worked table of NotBefore's doc comment.
func TestNotBefore(t *testing.T) {
	const day = 24 * time.Hour
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tests := []struct {
		name     string
		lifetime time.Duration // 0: no certificate
		failures int
		last     time.Duration // lastFailure - NotBefore
		want     time.Duration // result - lastFailure
	}{
		{"90d 1", 90 * day, 1, 60 * day, time.Hour},
		{"90d 2", 90 * day, 2, 60 * day, 2 * time.Hour},
		{"90d 3", 90 * day, 3, 60 * day, 4 * time.Hour},
		{"90d 5", 90 * day, 5, 60 * day, 16 * time.Hour},
		{"90d 6 capped", 90 * day, 6, 60 * day, 24 * time.Hour},
		{"90d 8 capped", 90 * day, 8, 60 * day, 24 * time.Hour},
		{"90d clamped to the last sixth", 90 * day, 8, 74*day + 12*time.Hour, 12 * time.Hour},
		{"90d inside the last sixth", 90 * day, 9, 80 * day, time.Hour},
		{"90d expired keeps trying", 90 * day, 30, 91 * day, time.Hour},
		{"6d 1", 6 * day, 1, 4 * day, time.Hour},
		{"6d 5", 6 * day, 5, 4 * day, 16 * time.Hour},
		{"6d 6 at the last sixth", 6 * day, 6, 4 * day, 24 * time.Hour},
		{"6d 7 inside", 6 * day, 7, 5*day + 12*time.Hour, time.Hour},
		{"6d clamp just before the last sixth: base floor", 6 * day, 4, 5*day - time.Minute, time.Hour},
		{"10m 1", 10 * time.Minute, 1, 7 * time.Minute, 6 * time.Second},
		{"10m 4", 10 * time.Minute, 4, 7 * time.Minute, 48 * time.Second},
		{"10m 6 clamped", 10 * time.Minute, 6, 8 * time.Minute, 20 * time.Second},
		{"10m inside", 10 * time.Minute, 6, 9 * time.Minute, 6 * time.Second},
		{"1m: minimum base", time.Minute, 1, 0, time.Second},
		{"no certificate 1", 0, 1, 0, time.Hour},
		{"no certificate 3", 0, 3, 0, 4 * time.Hour},
		{"no certificate many", 0, math.MaxInt, 0, 24 * time.Hour},
		{"huge failure count", 90 * day, 1 << 40, 10 * day, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var nb, na time.Time
			if tt.lifetime > 0 {
				nb, na = t0, t0.Add(tt.lifetime)
			}
			last := at(tt.last)
			got := NotBefore(tt.failures, last, nb, na)
			if d := got.Sub(last); d != tt.want {
				t.Fatalf("NotBefore = lastFailure + %v, want + %v", d, tt.want)
			}
		})
	}
}

func TestNotBeforeNoFailures(t *testing.T) {
	for _, f := range []int{0, -1, math.MinInt} {
		if got := NotBefore(f, t0, t0, t0.Add(time.Hour)); !got.IsZero() {
			t.Errorf("NotBefore(%d) = %v, want the zero time", f, got)
		}
	}
}

// TestRetryAfterLimit: a Retry-After of ten years set the next attempt past
// the certificate's expiry.
func TestRetryAfterLimit(t *testing.T) {
	day := 24 * time.Hour
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		now      time.Time
		nb, na   time.Time
		wantFrom time.Duration // limit - now
	}{
		{"no certificate: the cap", issued, time.Time{}, time.Time{}, crossRunCap},
		{"90 days, day 10: the cap", issued.Add(10 * day), issued, issued.Add(90 * day), crossRunCap},
		{"90 days, 2 h before the last sixth", issued.Add(75*day - 2*time.Hour), issued, issued.Add(90 * day), 2 * time.Hour},
		{"90 days, day 84: a sixth of the 6 days left", issued.Add(84 * day), issued, issued.Add(90 * day), day},
		{"90 days, 2 h left: the base interval", issued.Add(90*day - 2*time.Hour), issued, issued.Add(90 * day), crossRunBase},
		{"expired: the base interval", issued.Add(91 * day), issued, issued.Add(90 * day), crossRunBase},
		{"6 days, day 1: the cap", issued.Add(day), issued, issued.Add(6 * day), crossRunCap},
		{"10 minutes, minute 9: a sixth of what is left", issued.Add(9 * time.Minute), issued, issued.Add(10 * time.Minute), 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RetryAfterLimit(tt.now, tt.nb, tt.na)
			if d := got.Sub(tt.now); d != tt.wantFrom {
				t.Errorf("limit = now + %v, want now + %v", d, tt.wantFrom)
			}
			if !tt.na.IsZero() && tt.now.Before(tt.na) && got.After(tt.na) {
				t.Errorf("limit %v is past the expiry %v", got, tt.na)
			}
		})
	}
}
