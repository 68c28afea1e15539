package testacme_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/lego"

	"github.com/renewkit/renewkit/internal/testacme"
)

// TestFaults injects each kind of fault and checks that it observably
// happened: the client's result and the server's FaultStats.
func TestFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault testacme.Fault
		// giveUp cancels the client's context once the fault has hit
		// (rather than after a time, which a loaded machine may spend
		// before the request even reaches the fault).
		giveUp    bool
		wantFired int
		check     func(t *testing.T, err error, took time.Duration)
	}{
		{
			name:      "badNonce retried by lego",
			fault:     testacme.BadNonce(testacme.EndpointNewOrder, 3),
			wantFired: 3,
			check:     wantNoErr,
		},
		{
			name:      "rateLimited with Retry-After",
			fault:     testacme.RateLimited(testacme.EndpointNewOrder, 1, 120*time.Second),
			wantFired: 1,
			check: func(t *testing.T, err error, _ time.Duration) {
				var rl *acme.RateLimitedError
				if !errors.As(err, &rl) || rl.RetryAfter != 120*time.Second {
					t.Fatalf("err = %v, want RateLimitedError with RetryAfter 2m", err)
				}
			},
		},
		{
			name:      "serverInternal on finalize",
			fault:     testacme.ServerInternal(testacme.EndpointFinalize, 1),
			wantFired: 1,
			check:     wantProblem(http.StatusInternalServerError, acme.ServerInternalErrorType),
		},
		{
			name:      "serverInternal on authz",
			fault:     testacme.ServerInternal(testacme.EndpointAuthz, 1),
			wantFired: 1,
			check:     wantProblem(http.StatusInternalServerError, acme.ServerInternalErrorType),
		},
		{
			name:      "unauthorized on challenge",
			fault:     testacme.Fault{Endpoint: testacme.EndpointChallenge, Kind: testacme.FaultProblem, Problem: "unauthorized", Count: 1},
			wantFired: 1,
			check:     wantProblem(http.StatusForbidden, acme.UnauthorizedErrorType),
		},
		{
			name:      "500 on certificate download is retried by the order poll",
			fault:     testacme.ServerInternal(testacme.EndpointCertificate, 1),
			wantFired: 1,
			check:     wantNoErr,
		},
		{
			name:      "HTML 503 from a proxy",
			fault:     testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultHTML, Count: 1},
			wantFired: 1,
			check: func(t *testing.T, err error, _ time.Duration) {
				if err == nil || !strings.Contains(err.Error(), "503") {
					t.Fatalf("err = %v, want one mentioning 503", err)
				}
			},
		},
		{
			name:      "connection reset",
			fault:     testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultReset, Count: 1},
			wantFired: 1,
			check: func(t *testing.T, err error, _ time.Duration) {
				var pd *acme.ProblemDetails
				if err == nil || errors.As(err, &pd) {
					t.Fatalf("err = %v, want a transport error", err)
				}
			},
		},
		{
			name:      "delay then pass through",
			fault:     testacme.Fault{Endpoint: testacme.EndpointChallenge, Kind: testacme.FaultDelay, Delay: 150 * time.Millisecond, Count: 1},
			wantFired: 1,
			check: func(t *testing.T, err error, took time.Duration) {
				wantNoErr(t, err, took)
				if took < 150*time.Millisecond {
					t.Fatalf("took %v, want ≥ the 150ms delay", took)
				}
			},
		},
		{
			name:      "stall until the client gives up",
			fault:     testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultStall},
			giveUp:    true,
			wantFired: 1,
			check: func(t *testing.T, err error, _ time.Duration) {
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hit := &faultSignal{hit: make(chan struct{})}
			s := startServer(t, testacme.Options{AlwaysValid: true, Logger: slog.New(hit)})
			c := newClient(t, s)
			if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
				t.Fatal(err)
			}
			s.Inject(tt.fault)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.giveUp {
				go func() {
					select {
					case <-hit.hit:
						cancel()
					case <-ctx.Done():
					}
				}()
			}
			start := time.Now()
			_, err := obtain(ctx, c, "default", names(1)...)
			tt.check(t, err, time.Since(start))
			if got := s.FaultStats().Fired; got != tt.wantFired {
				t.Errorf("FaultStats().Fired = %d, want %d", got, tt.wantFired)
			}
		})
	}
}

// faultSignal is a slog.Handler for a Server's Logger that closes hit at
// the server's first "fault injected" record (logged as a fault hits a
// request, before it acts).
type faultSignal struct {
	once sync.Once
	hit  chan struct{}
}

func (h *faultSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h *faultSignal) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "fault injected" {
		h.once.Do(func() { close(h.hit) })
	}
	return nil
}
func (h *faultSignal) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *faultSignal) WithGroup(string) slog.Handler      { return h }

func wantNoErr(t *testing.T, err error, _ time.Duration) {
	t.Helper()
	if err != nil {
		t.Fatalf("err = %v, want success", err)
	}
}

func wantProblem(status int, typ string) func(*testing.T, error, time.Duration) {
	return func(t *testing.T, err error, _ time.Duration) {
		t.Helper()
		var pd *acme.ProblemDetails
		if !errors.As(err, &pd) || pd.HTTPStatus != status || pd.Type != typ {
			t.Fatalf("err = %v, want problem %d %s", err, status, typ)
		}
	}
}

func TestFaultOnDirectory(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{})
	s.Inject(testacme.Fault{Endpoint: testacme.EndpointDirectory, Kind: testacme.FaultHTML, Status: 503, Count: 1})
	cfg := lego.NewConfig(&user{key: mustKey(t)})
	cfg.CADirURL = s.DirectoryURL()
	cfg.HTTPClient = s.HTTPClient()
	if _, err := lego.NewClient(cfg); err == nil {
		t.Fatal("NewClient succeeded through a 503 on the directory")
	}
	if _, err := lego.NewClient(cfg); err != nil { // Count 1: spent
		t.Fatalf("NewClient after the fault: %v", err)
	}
	if st := s.FaultStats(); st.Fired != 1 || st.ByName["directory/html"] != 1 {
		t.Errorf("FaultStats = %+v", st)
	}
}

func TestFaultRemove(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{AlwaysValid: true})
	c := newClient(t, s)
	if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
		t.Fatal(err)
	}
	remove := s.Inject(testacme.Fault{Name: "down", Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultHTML})
	for range 2 {
		if _, err := obtain(t.Context(), c, "default", names(1)...); err == nil {
			t.Fatal("Obtain succeeded while newOrder was down")
		}
	}
	remove()
	remove() // idempotent
	if _, err := obtain(t.Context(), c, "default", names(1)...); err != nil {
		t.Fatalf("Obtain after remove: %v", err)
	}
	if got := s.FaultStats().ByName["down"]; got != 2 {
		t.Errorf("fired %d, want 2", got)
	}
}

// TestFaultProbability: with a fixed seed and sequential requests the
// decisions are reproducible; the share is near the probability.
func TestFaultProbability(t *testing.T) {
	t.Parallel()
	run := func() int {
		s := startServer(t, testacme.Options{FaultSeed: 42})
		s.Inject(testacme.Fault{Endpoint: testacme.EndpointNewNonce, Kind: testacme.FaultProblem, Problem: "serverInternal", Probability: 0.3})
		hc := s.HTTPClient()
		defer hc.CloseIdleConnections()
		nonceURL := strings.TrimSuffix(s.DirectoryURL(), "/dir") + "/nonce-plz"
		failed := 0
		for range 200 {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodHead, nonceURL, nil)
			req.Header.Set("User-Agent", "test")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusInternalServerError {
				failed++
			}
		}
		if got := s.FaultStats().Fired; got != failed {
			t.Errorf("Fired = %d, but %d requests failed", got, failed)
		}
		return failed
	}
	a, b := run(), run()
	if a != b {
		t.Errorf("same seed, different outcomes: %d vs %d", a, b)
	}
	if a < 35 || a > 85 {
		t.Errorf("%d of 200 hit, want about 60", a)
	}
}

// TestFaultDelayRelease holds a finalize request until the test releases
// it: the client is inside the request for as long as the test wants, and
// its order completes once released.
func TestFaultDelayRelease(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{AlwaysValid: true})
	c := newClient(t, s)
	if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	s.Inject(testacme.Fault{Endpoint: testacme.EndpointFinalize, Kind: testacme.FaultDelay, Release: release, Count: 1})
	done := make(chan error, 1)
	go func() {
		_, err := obtain(t.Context(), c, "default", names(1)...)
		done <- err
	}()
	// Wait for the request to be held: the fault fired.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for s.FaultStats().Fired == 0 {
		select {
		case err := <-done:
			t.Fatalf("the order ended before its finalize was held: %v", err)
		case <-tick.C:
		}
	}
	if n := s.Stats().Issued; n != 0 {
		t.Fatalf("issued %d while finalize is held, want 0", n)
	}
	select {
	case err := <-done:
		t.Fatalf("the order ended while its finalize was held: %v", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("after the release: %v", err)
	}
	if n := s.Stats().Issued; n != 1 {
		t.Errorf("issued %d after the release, want 1", n)
	}
}
