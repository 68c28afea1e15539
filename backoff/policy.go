package backoff

import (
	"math"
	"time"

	cb "github.com/cenkalti/backoff/v5"
)

// Policy is a retry policy for one call of Do: how many times to retry and
// how long to wait between attempts.
//
// The zero Policy is Default(). Each field's zero value means its default;
// negative values switch a feature off. A Policy is a plain value, safe to
// copy and share.
//
// The wait before retry n (n = 1, 2, ...) is
//
//	min(Initial * Multiplier^(n-1), Max) * (1 + Jitter*(2u-1)), capped at Max
//
// with u uniform in [0, 1). For Default() that is 10 s, 30 s and 90 s, each
// ±20 %:
//
//	retry  nominal  range
//	1      10 s     8 s .. 12 s
//	2      30 s     24 s .. 36 s
//	3      90 s     72 s .. 108 s
type Policy struct {
	// Retries is how many times a failing operation is retried, so Do makes
	// at most Retries+1 attempts. 0 means 3; negative means no retry.
	Retries int
	// Initial is the nominal wait before the first retry. 0 means 10 s;
	// negative means no wait at all.
	Initial time.Duration
	// Multiplier scales each nominal wait from the previous one. 0 (or NaN)
	// means 3; a value below 1 means 1 (constant waits).
	Multiplier float64
	// Max caps every single wait, jitter included (but not a server's
	// Retry-After, which the budget bounds instead). 0 means 5 minutes;
	// negative means no cap.
	Max time.Duration
	// Jitter spreads each wait uniformly over ±Jitter of its nominal value,
	// so that clients that failed together do not retry together. 0 (or
	// NaN) means 0.2 (±20 %); negative means none; above 1 means 1.
	Jitter float64
}

// Defaults of Policy (see Default).
const (
	defaultRetries    = 3
	defaultInitial    = 10 * time.Second
	defaultMultiplier = 3.0
	defaultMax        = 5 * time.Minute
	defaultJitter     = 0.2
)

// Default returns the default policy, with every field explicit: 3 retries,
// waits of 10 s, 30 s and 90 s, each ±20 %, no single wait over 5 minutes.
// It is what the zero Policy means.
func Default() Policy {
	return Policy{
		Retries:    defaultRetries,
		Initial:    defaultInitial,
		Multiplier: defaultMultiplier,
		Max:        defaultMax,
		Jitter:     defaultJitter,
	}
}

// normalized returns p with the zero-value defaults and the out-of-range
// rules applied, once: its result must not be normalized again: Retries ≥ 0, Initial ≥ 0, Multiplier ≥ 1 (finite or +Inf),
// Max > 0, Jitter in [0, 1].
func (p Policy) normalized() Policy {
	switch {
	case p.Retries == 0:
		p.Retries = defaultRetries
	case p.Retries < 0:
		p.Retries = 0
	}
	switch {
	case p.Initial == 0:
		p.Initial = defaultInitial
	case p.Initial < 0:
		p.Initial = 0
	}
	switch {
	case p.Multiplier == 0 || math.IsNaN(p.Multiplier):
		p.Multiplier = defaultMultiplier
	case p.Multiplier < 1:
		p.Multiplier = 1
	}
	switch {
	case p.Max == 0:
		p.Max = defaultMax
	case p.Max < 0:
		p.Max = math.MaxInt64
	}
	switch {
	case p.Jitter == 0 || math.IsNaN(p.Jitter):
		p.Jitter = defaultJitter
	case p.Jitter < 0:
		p.Jitter = 0
	case p.Jitter > 1:
		p.Jitter = 1
	}
	return p
}

// intervals returns the nominal wait sequence of a normalized policy:
// cenkalti/backoff's ExponentialBackOff without its randomization (its
// random source is global and cannot be injected; Do applies the jitter).
// The caller still caps each value at Max: ExponentialBackOff caps the
// interval only after the first one.
func (p Policy) intervals() *cb.ExponentialBackOff {
	b := &cb.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: 0,
		Multiplier:          p.Multiplier,
		MaxInterval:         p.Max, // never 0 here: 0 would restart the sequence at Initial
	}
	b.Reset()
	return b
}

// wait returns the jittered wait for nominal interval d with u in [0, 1],
// capped at Max, never negative.
func (p Policy) wait(d time.Duration, u float64) time.Duration {
	d = min(d, p.Max)
	if p.Jitter > 0 && d > 0 {
		if !(u >= 0) { // NaN or negative
			u = 0
		}
		u = min(u, 1)
		x := float64(d) * (1 + p.Jitter*(2*u-1))
		switch {
		case x <= 0:
			d = 0
		case x >= float64(math.MaxInt64):
			d = math.MaxInt64
		default:
			d = time.Duration(x)
		}
	}
	return max(min(d, p.Max), 0)
}

// MaxAttempts returns how many attempts Do makes at most under p: its
// Retries (0 meaning the default, 3) plus the first.
func (p Policy) MaxAttempts() int { return p.normalized().Retries + 1 }

// Budget returns the total time Do may spend waiting under p unless
// withMaxWait says otherwise: the sum of the Retries waits at their largest
// jitter. Transient failures alone therefore never exhaust it; waits
// stretched by a server's Retry-After may.
func (p Policy) Budget() time.Duration { return p.normalized().budget() }

// budget is Budget of a normalized policy. (normalized is not idempotent:
// a normalized 0 means "none", a raw 0 "the default".)
func (p Policy) budget() time.Duration {
	seq := p.intervals()
	var total time.Duration
	for n := 0; n < p.Retries; n++ {
		nominal := min(seq.NextBackOff(), p.Max)
		w := p.wait(nominal, 1)
		if nominal == p.Max || w == 0 {
			// Every remaining wait is the same: add them at once.
			return addSat(total, mulSat(w, p.Retries-n))
		}
		total = addSat(total, w)
	}
	return total
}

func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func mulSat(d time.Duration, n int) time.Duration {
	if n <= 0 || d <= 0 {
		return 0
	}
	if d > math.MaxInt64/time.Duration(n) {
		return math.MaxInt64
	}
	return d * time.Duration(n)
}
