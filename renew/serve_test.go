package renew

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/renewkit/renewkit/hooks"
)

func TestServeRenewsAgainAndStopsCleanly(t *testing.T) {
	e := newEnv(t)
	e.r.Now = nil // real time: Serve sleeps on real timers
	e.ca.now = time.Now
	e.ca.lifetime = 3 * time.Second // due after 2 s (one third left)
	installed := make(chan hooks.Event, 10)
	h := hooks.Func("reload", func(_ context.Context, ev hooks.Event) error { installed <- ev; return nil })
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Serve(ctx, cert("svc", h)) }()
	// Two installs: the first at once, the second when the first is due.
	deadline := time.After(20 * time.Second)
	for n := 0; n < 2; n++ {
		select {
		case ev := <-installed:
			if ev.Generation != n+1 {
				t.Fatalf("install %d is generation %d", n+1, ev.Generation)
			}
		case err := <-done:
			t.Fatalf("Serve returned early: %v", err)
		case <-deadline:
			t.Fatalf("only %d installs", n)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	// No goroutine of Serve's is left behind.
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Serve, %d before", n, before)
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
