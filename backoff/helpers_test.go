package backoff

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeClock is an injected clock whose Sleep advances time at once and
// records the waits.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waits = append(c.waits, d)
	return nil
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

func (c *fakeClock) opts(extra ...Option) []Option {
	return append([]Option{withSleep(c.Sleep), withNow(c.Now)}, extra...)
}

// constRand returns a withRand source that always yields u.
func constRand(u float64) Option { return withRand(func() float64 { return u }) }

// failing returns an op that fails with the given errors in turn (the last
// one repeating), and a pointer to its call count.
func failing(errs ...error) (func(context.Context) error, *int) {
	n := new(int)
	return func(context.Context) error {
		i := min(*n, len(errs)-1)
		*n++
		return errs[i]
	}, n
}

// wantStop asserts that err is a *gaveUp with the given reason and
// attempts.
func wantStop(t *testing.T, err error, reason stopReason, attempts int) *gaveUp {
	t.Helper()
	var se *gaveUp
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *gaveUp", err, err)
	}
	if se.Reason != reason || se.Attempts != attempts {
		t.Fatalf("gaveUp{Reason: %v, Attempts: %d}, want {%v, %d}: %v", se.Reason, se.Attempts, reason, attempts, err)
	}
	return se
}
