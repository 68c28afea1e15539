package renew

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/hooks"
)

// fakeTimers is a serveTimer whose timers fire when the test says: each
// timer Serve starts is handed to the test on started.
type fakeTimers struct{ started chan *fakeTimer }

type fakeTimer struct {
	d       time.Duration
	fire    chan time.Time
	stopped chan struct{}
}

func (f *fakeTimers) start(d time.Duration) (<-chan time.Time, func() bool) {
	ft := &fakeTimer{d: d, fire: make(chan time.Time, 1), stopped: make(chan struct{})}
	f.started <- ft
	var once sync.Once
	return ft.fire, func() bool { once.Do(func() { close(ft.stopped) }); return true }
}

func TestServeRenewsAgainAndStopsCleanly(t *testing.T) {
	e := newEnv(t)
	installed := make(chan hooks.Event, 10)
	h := hooks.Func("reload", func(_ context.Context, ev hooks.Event) error { installed <- ev; return nil })
	timers := &fakeTimers{started: make(chan *fakeTimer)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.r.serve(ctx, nil, timers.start, cert("svc", h)) }()
	// Two installs: the first at once, the second once the clock has
	// passed the first certificate's renewal point and the timer fires.
	for gen := 1; gen <= 2; gen++ {
		select {
		case ev := <-installed:
			if ev.Generation != gen {
				t.Fatalf("install %d is generation %d", gen, ev.Generation)
			}
		case err := <-done:
			t.Fatalf("Serve returned early: %v", err)
		}
		ft := <-timers.started
		// Ninety-day certificates: Serve looks again after its maximum wait.
		if ft.d < serveMaxWait || ft.d > serveMaxWait+5*time.Minute {
			t.Fatalf("wait %v after round %d, want %v plus at most 5m jitter", ft.d, gen, serveMaxWait)
		}
		if gen == 1 {
			e.clk.Add(61 * 24 * time.Hour) // past two thirds of the lifetime
			ft.fire <- e.clk.Now()
			continue
		}
		cancel() // while Serve waits
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve: %v", err)
		}
		select {
		case <-ft.stopped:
		default:
			t.Fatal("Serve returned without stopping its timer")
		}
	}
	if len(installed) != 0 {
		t.Fatalf("%d installs more than the two rounds made", len(installed))
	}
}

func TestNextWaitBounds(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := &Renewer{Now: func() time.Time { return now }}
	cases := []struct {
		name     string
		results  []Result
		min, max time.Duration
	}{
		{"far future is capped", []Result{{Outcome: NotDue, NextCheck: now.Add(60 * 24 * time.Hour)}}, serveMaxWait, serveMaxWait + 5*time.Minute},
		{"earliest wins", []Result{{Outcome: NotDue, NextCheck: now.Add(5 * time.Hour)}, {Outcome: NotDue, NextCheck: now.Add(time.Hour)}}, time.Hour, time.Hour + 6*time.Minute},
		{"past is floored", []Result{{Outcome: Failed, NextCheck: now.Add(-time.Hour)}}, serveMinWait, serveMinWait},
		{"locked looks again soon", []Result{{Outcome: Locked}}, serveLockedWait, serveLockedWait + serveLockedWait/10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for range 50 {
				if w := r.nextWait(c.results); w < c.min || w > c.max {
					t.Fatalf("wait %v outside [%v, %v]", w, c.min, c.max)
				}
			}
		})
	}
}

// observerFunc is an Observer that hands each Result to a function.
type observerFunc func(Result)

func (f observerFunc) Finished(res Result) { f(res) }

func TestServeUpdatesReplacesListWhileSleeping(t *testing.T) {
	e := newEnv(t)
	finished := make(chan Result, 10)
	e.r.Observer = observerFunc(func(res Result) { finished <- res })
	updates := make(chan []Certificate)
	done := make(chan error, 1)
	go func() { done <- e.r.ServeUpdates(t.Context(), updates, cert("a")) }()
	if res := <-finished; res.Name != "a" || res.Outcome != Renewed {
		t.Fatalf("first round: %+v", res)
	}
	// "a" is not due for weeks: Serve sleeps until the update wakes it.
	updates <- []Certificate{cert("a"), cert("b")}
	got := map[string]Outcome{}
	for range 2 {
		res := <-finished
		got[res.Name] = res.Outcome
	}
	if got["a"] != NotDue || got["b"] != Renewed {
		t.Fatalf("round after the update: %v", got)
	}
	close(updates)
	if err := <-done; err != nil {
		t.Fatalf("ServeUpdates after close: %v", err)
	}
}

func TestServeUpdatesCloseLetsTheRoundFinish(t *testing.T) {
	e := newEnv(t)
	entered, release := make(chan struct{}), make(chan struct{})
	slow := hooks.Func("slow", func(ctx context.Context, _ hooks.Event) error {
		close(entered)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	finished := make(chan Result, 1)
	e.r.Observer = observerFunc(func(res Result) { finished <- res })
	updates := make(chan []Certificate)
	done := make(chan error, 1)
	go func() { done <- e.r.ServeUpdates(t.Context(), updates, cert("a", slow)) }()
	<-entered
	close(updates) // while the round's hook runs
	select {
	case err := <-done:
		t.Fatalf("ServeUpdates returned during a round: %v", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("ServeUpdates: %v", err)
	}
	if res := <-finished; res.Outcome != Renewed || res.HooksPending != 0 {
		t.Fatalf("round: %+v", res)
	}
}

func TestHookGrace(t *testing.T) {
	cases := []struct {
		name        string
		grace       time.Duration
		finishes    bool // the hook returns once released, after ctx ended
		wantPending int
	}{
		{"zero kills the running hook at once", 0, false, 1},
		{"a hook finishing within the grace completes", time.Hour, true, 0},
		{"a hook outlasting the grace is stopped", time.Millisecond, false, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.r.HookGrace = c.grace
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			release := make(chan struct{})
			h := hooks.Func("reload", func(hctx context.Context, _ hooks.Event) error {
				cancel() // the stop arrives while the hook runs
				if c.finishes {
					<-release
					return hctx.Err() // still nil: the grace has not passed
				}
				<-hctx.Done()
				return hctx.Err()
			})
			if c.finishes {
				close(release)
			}
			res := e.r.Run(ctx, cert("a", h))[0]
			if res.HooksPending != c.wantPending {
				t.Fatalf("hooks pending %d, want %d: %+v", res.HooksPending, c.wantPending, res)
			}
			if res.Generation != 1 {
				t.Fatalf("generation %d, want 1 (the swap precedes the hooks)", res.Generation)
			}
		})
	}
}
