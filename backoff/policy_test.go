package backoff

import (
	"math"
	"testing"
	"time"
)

func TestZeroPolicyIsDefault(t *testing.T) {
	if got := (Policy{}).normalized(); got != Default() {
		t.Fatalf("zero policy normalizes to %+v, want %+v", got, Default())
	}
	if Default().normalized() != Default() {
		t.Fatal("Default is not stable under normalization")
	}
}

func TestPolicyNormalized(t *testing.T) {
	tests := []struct {
		name string
		in   Policy
		want Policy
	}{
		{"no retries", Policy{Retries: -1}, Policy{0, 10 * time.Second, 3, 5 * time.Minute, 0.2}},
		{"no wait", Policy{Initial: -1}, Policy{3, 0, 3, 5 * time.Minute, 0.2}},
		{"shrinking multiplier", Policy{Multiplier: 0.5}, Policy{3, 10 * time.Second, 1, 5 * time.Minute, 0.2}},
		{"NaN multiplier", Policy{Multiplier: math.NaN()}, Default()},
		{"negative multiplier", Policy{Multiplier: -2}, Policy{3, 10 * time.Second, 1, 5 * time.Minute, 0.2}},
		{"no cap", Policy{Max: -1}, Policy{3, 10 * time.Second, 3, math.MaxInt64, 0.2}},
		{"no jitter", Policy{Jitter: -1}, Policy{3, 10 * time.Second, 3, 5 * time.Minute, 0}},
		{"huge jitter", Policy{Jitter: 5}, Policy{3, 10 * time.Second, 3, 5 * time.Minute, 1}},
		{"NaN jitter", Policy{Jitter: math.NaN()}, Default()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.normalized(); got != tt.want {
				t.Fatalf("normalized = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPolicyWaitsWithCap(t *testing.T) {
	p := Policy{Retries: 6, Initial: time.Second, Multiplier: 2, Max: 10 * time.Second, Jitter: 0.5}.normalized()
	seq := p.intervals()
	var got []time.Duration
	for range p.Retries {
		got = append(got, p.wait(seq.NextBackOff(), 1)) // highest jitter
	}
	want := []time.Duration{1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v (Max caps the jittered wait)", got, want)
		}
	}
	// Initial above Max: cenkalti's ExponentialBackOff would return Initial
	// first; the cap still holds.
	q := Policy{Initial: time.Hour, Max: time.Minute, Jitter: -1}.normalized()
	if w := q.wait(q.intervals().NextBackOff(), 0.5); w != time.Minute {
		t.Fatalf("first wait %v, want the 1m cap", w)
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		want time.Duration
	}{
		{"default: (10+30+90) s * 1.2", Policy{}, 156 * time.Second},
		{"no jitter", Policy{Jitter: -1}, 130 * time.Second},
		{"no retries", Policy{Retries: -1}, 0},
		{"no wait", Policy{Initial: -1}, 0},
		{"capped", Policy{Retries: 5, Initial: time.Minute, Multiplier: 2, Max: 3 * time.Minute, Jitter: -1}, (1 + 2 + 3 + 3 + 3) * time.Minute},
		{"many retries saturate quickly", Policy{Retries: math.MaxInt, Max: -1}, math.MaxInt64},
		{"many capped retries", Policy{Retries: 1_000_000, Max: time.Second, Jitter: -1}, 1_000_000 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Budget(); got != tt.want {
				t.Fatalf("Budget = %v, want %v", got, tt.want)
			}
		})
	}
}
