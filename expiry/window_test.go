package expiry

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestWindowCheck(t *testing.T) {
	v := span(90 * day)
	tests := []struct {
		name string
		w    Window
		want string // substring of the error; "" = accepted
	}{
		{"typical", Window{Start: t0.Add(59 * day), End: t0.Add(61 * day)}, ""},
		{"ends at expiry", Window{Start: t0.Add(80 * day), End: v.NotAfter}, ""},
		{"in the past (incident)", Window{Start: t0.Add(-2 * day), End: t0.Add(-day)}, ""},
		{"one nanosecond", Window{Start: t0.Add(day), End: t0.Add(day + 1)}, ""},
		{"end before start", Window{Start: t0.Add(61 * day), End: t0.Add(59 * day)}, "not after its start"},
		{"empty", Window{Start: t0.Add(60 * day), End: t0.Add(60 * day)}, "not after its start"},
		{"zero", Window{}, "missing start or end"},
		{"zero start", Window{End: t0.Add(60 * day)}, "missing start or end"},
		{"zero end", Window{Start: t0.Add(60 * day)}, "missing start or end"},
		{"straddles expiry", Window{Start: t0.Add(89 * day), End: t0.Add(91 * day)}, "after the certificate expires"},
		{"beyond expiry", Window{Start: t0.Add(100 * day), End: t0.Add(101 * day)}, "after the certificate expires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.w.Check(v)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Check = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Check = %v, want an error containing %q", err, tt.want)
			case tt.want != "" && !errors.Is(err, errWindowRejected):
				t.Fatalf("Check error %v does not wrap errWindowRejected", err)
			}
		})
	}
}

func TestWindowAt(t *testing.T) {
	w := Window{Start: t0, End: t0.Add(10 * time.Hour)}
	tests := []struct {
		u    float64
		want time.Time
	}{
		{0, t0},
		{0.5, t0.Add(5 * time.Hour)},
		{0.25, t0.Add(150 * time.Minute)},
		{-1, t0},
		{math.NaN(), t0},
		{1, w.End.Add(-1)},
		{math.Inf(1), w.End.Add(-1)},
		{math.Nextafter(1, 0), w.End.Add(-1)},
	}
	for _, tt := range tests {
		if got := w.At(tt.u); !got.Equal(tt.want) {
			t.Errorf("At(%v) = %v, want %v", tt.u, got, tt.want)
		}
	}
	empty := Window{Start: t0, End: t0}
	if got := empty.At(0.5); !got.Equal(t0) {
		t.Errorf("empty window At = %v, want Start", got)
	}
}

// TestWindowPickRange checks with a seeded source that picks fall in
// [Start, End) and spread evenly over it.
func TestWindowPickRange(t *testing.T) {
	for _, length := range []time.Duration{time.Nanosecond, time.Second, 2 * day, 30 * day} {
		t.Run(length.String(), func(t *testing.T) {
			w := Window{Start: t0, End: t0.Add(length)}
			r := rand.New(rand.NewPCG(1, 2))
			const n, buckets = 20000, 10
			var count [buckets]int
			for range n {
				p := w.Pick(r)
				if p.Before(w.Start) || !p.Before(w.End) {
					t.Fatalf("Pick = %v outside [%v, %v)", p, w.Start, w.End)
				}
				count[int(p.Sub(w.Start)*buckets/length)]++
			}
			if length < buckets {
				return // too short to spread
			}
			for i, c := range count {
				if c < n/buckets*8/10 || c > n/buckets*12/10 {
					t.Errorf("bucket %d has %d of %d picks: not uniform (%v)", i, c, n, count)
				}
			}
		})
	}
}

func TestWindowPickNilRandom(t *testing.T) {
	w := Window{Start: t0, End: t0.Add(time.Hour)}
	if p := w.Pick(nil); p.Before(w.Start) || !p.Before(w.End) {
		t.Fatalf("Pick(nil) = %v outside the window", p)
	}
}
