package acmeissuer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/lockfile"
	"github.com/renewkit/renewkit/renew"
)

// TestFaultClasses injects each kind of testacme fault at each step and
// checks the class of Issue's error (or that Issue rode it out).
func TestFaultClasses(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	connected := newTestIssuer(t, fastConfig(t, ca))
	if err := connected.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	const ok = class(-1) // Issue succeeds
	tests := []struct {
		name       string
		fault      testacme.Fault
		fresh      bool // needs an Issuer without an account yet
		want       class
		retryAfter time.Duration
		step       string
	}{
		{"newOrder serverInternal", testacme.ServerInternal(testacme.EndpointNewOrder, 1), false, classTransient, 0, "new order"},
		{"newOrder rateLimited 429", testacme.RateLimited(testacme.EndpointNewOrder, 1, 2*time.Second), false, classRateLimited, 2 * time.Second, "new order"},
		{"newOrder rateLimited 503", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "rateLimited", Status: 503, RetryAfter: 3 * time.Second, Count: 1}, false, classRateLimited, 3 * time.Second, "new order"},
		{"newOrder rateLimited 429 no Retry-After", testacme.RateLimited(testacme.EndpointNewOrder, 1, 0), false, classRateLimited, 0, "new order"},
		{"newOrder HTML 503", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultHTML, Count: 1}, false, classTransient, 0, "new order"},
		{"newOrder HTML 502 with Retry-After", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultHTML, Status: 502, RetryAfter: 4 * time.Second, Count: 1}, false, classRateLimited, 4 * time.Second, "new order"},
		{"newOrder HTML 403", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultHTML, Status: 403, Count: 1}, false, classPermanent, 0, "new order"},
		{"newOrder reset", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultReset, Count: 1}, false, classTransient, 0, "new order"},
		{"newOrder unauthorized", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "unauthorized", Count: 1}, false, classPermanent, 0, "new order"},
		{"newOrder rejectedIdentifier", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "rejectedIdentifier", Status: 400, Count: 1}, false, classPermanent, 0, "new order"},
		{"newOrder caa", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "caa", Status: 403, Count: 1}, false, classPermanent, 0, "new order"},
		{"newOrder accountDoesNotExist once (account looked up again)", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "accountDoesNotExist", Status: 400, Count: 1}, false, ok, 0, ""},
		{"newOrder accountDoesNotExist for good", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "accountDoesNotExist", Status: 400}, false, classPermanent, 0, "new order"},
		{"newOrder badNonce twice (lego retries)", testacme.BadNonce(testacme.EndpointNewOrder, 2), false, ok, 0, ""},
		{"newOrder delay", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultDelay, Delay: 20 * time.Millisecond, Count: 1}, false, ok, 0, ""},
		{"directory HTML 503", testacme.Fault{Endpoint: testacme.EndpointDirectory, Kind: testacme.FaultHTML, Count: 1}, true, classTransient, 0, "directory"},
		{"newNonce serverInternal", testacme.ServerInternal(testacme.EndpointNewNonce, 1), true, classTransient, 0, "account"},
		{"newAccount serverInternal", testacme.ServerInternal(testacme.EndpointNewAccount, 1), true, classTransient, 0, "account"},
		{"newAccount malformed", testacme.Fault{Endpoint: testacme.EndpointNewAccount, Kind: testacme.FaultProblem, Problem: "malformed", Count: 1}, true, classPermanent, 0, "account"},
		{"authz serverInternal", testacme.ServerInternal(testacme.EndpointAuthz, 1), false, classTransient, 0, "authorization"},
		{"authz reset", testacme.Fault{Endpoint: testacme.EndpointAuthz, Kind: testacme.FaultReset, Count: 1}, false, classTransient, 0, "authorization"},
		{"challenge serverInternal", testacme.ServerInternal(testacme.EndpointChallenge, 1), false, classTransient, 0, "challenge http-01 for"},
		{"challenge rateLimited", testacme.RateLimited(testacme.EndpointChallenge, 1, time.Second), false, classRateLimited, time.Second, "challenge http-01 for"},
		{"finalize badCSR", testacme.Fault{Endpoint: testacme.EndpointFinalize, Kind: testacme.FaultProblem, Problem: "badCSR", Count: 1}, false, classPermanent, 0, "finalize"},
		{"finalize serverInternal", testacme.ServerInternal(testacme.EndpointFinalize, 1), false, classTransient, 0, "finalize"},
		{"finalize rateLimited", testacme.RateLimited(testacme.EndpointFinalize, 1, 5*time.Second), false, classRateLimited, 5 * time.Second, "finalize"},
		{"order poll serverInternal twice (ridden out)", testacme.ServerInternal(testacme.EndpointOrder, 2), false, ok, 0, ""},
		{"order poll serverInternal for good", testacme.ServerInternal(testacme.EndpointOrder, 0), false, classTransient, 0, "order"},
		{"order poll unauthorized", testacme.Fault{Endpoint: testacme.EndpointOrder, Kind: testacme.FaultProblem, Problem: "unauthorized", Count: 1}, false, classPermanent, 0, "order ready"},
		{"download serverInternal once (ridden out)", testacme.ServerInternal(testacme.EndpointCertificate, 1), false, ok, 0, ""},
		{"download reset once (ridden out)", testacme.Fault{Endpoint: testacme.EndpointCertificate, Kind: testacme.FaultReset, Count: 1}, false, ok, 0, ""},
		{"download HTML 503 for good", testacme.Fault{Endpoint: testacme.EndpointCertificate, Kind: testacme.FaultHTML}, false, classTransient, 0, "download"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := connected
			if tt.fresh {
				iss = newTestIssuer(t, fastConfig(t, ca))
			}
			remove := ca.Inject(tt.fault)
			defer remove()
			names := []string{domain("fault")}
			got, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "faulty", Domains: names, Key: mustKey(t, renew.EC256), Profile: "default"},
				func(context.Context, renew.InFlight) error { return nil })
			if tt.want == ok {
				if err != nil {
					t.Fatalf("Issue: %v, want success", err)
				}
				checkIssued(t, got, renew.IssueRequest{Domains: names})
				return
			}
			if err == nil {
				t.Fatalf("Issue succeeded, want a %v error", tt.want)
			}
			checkClass(t, err, tt.want)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("no *Error in %v", err)
			}
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.retryAfter)
			}
			if tt.want == classRateLimited {
				var rl *backoff.RateLimitedError
				if !errors.As(err, &rl) || rl.RetryAfter != tt.retryAfter {
					t.Errorf("backoff.RateLimitedError = %+v, want RetryAfter %v", rl, tt.retryAfter)
				}
			}
			msg := err.Error()
			if !strings.Contains(msg, `certificate "faulty"`) || !strings.Contains(msg, tt.step) {
				t.Errorf("message %q does not name the certificate and the step %q", msg, tt.step)
			}
			if tt.fault.Kind == testacme.FaultProblem && tt.fault.Endpoint != testacme.EndpointNewNonce && !strings.Contains(msg, strings.TrimPrefix(tt.fault.Problem, problemNS)) {
				t.Errorf("message %q does not name the problem %q", msg, tt.fault.Problem)
			}
		})
	}
}

// TestCancelAtEachStage cancels ctx while Issue waits at each step and checks
// that it returns promptly with an error matching context.Canceled.
// "Promptly" is cancelWithin, a bound a loaded machine meets easily, while
// every other wait Issue could be caught in here lasts longer: the stalls
// and the lock are never released, propagation never completes, the HTTP
// client's timeout is 30 s and the clean-up's is set to 20 s. (It was 100
// ms, which a 2-core machine under load missed.)
//
// Each subtest has a CA of its own (a few milliseconds to start), closed at
// its end: what a cancelled Issue leaves running in the CA (a stalled
// request, a validation, cleanup requests on the same order) cannot reach
// the next subtest, and a request the CA cannot finish fails the subtest
// that left it (Close reports it) instead of stalling every later one.
func TestCancelAtEachStage(t *testing.T) {
	stall := func(ep testacme.Endpoint) testacme.Fault {
		return testacme.Fault{Endpoint: ep, Kind: testacme.FaultStall, Count: 1}
	}
	tests := []struct {
		name  string
		fault *testacme.Fault
		path  string // request path prefix that marks the stage
		dns   bool   // solve with a DNS-01 provider that never publishes
		block string // "journal", "present": block there instead
	}{
		{name: "directory", fault: ptr(stall(testacme.EndpointDirectory)), path: "/dir"},
		{name: "new account", fault: ptr(stall(testacme.EndpointNewAccount)), path: "/sign-me-up"},
		{name: "new order", fault: ptr(stall(testacme.EndpointNewOrder)), path: "/order-plz"},
		{name: "authorization", fault: ptr(stall(testacme.EndpointAuthz)), path: "/authZ/"},
		{name: "challenge", fault: ptr(stall(testacme.EndpointChallenge)), path: "/chalZ/"},
		{name: "present", block: "present"},
		{name: "dns propagation", dns: true},
		{name: "order ready", fault: ptr(stall(testacme.EndpointOrder)), path: "/my-order/"},
		{name: "journal", block: "journal"},
		{name: "finalize", fault: ptr(stall(testacme.EndpointFinalize)), path: "/finalize-order/"},
		{name: "download", fault: ptr(stall(testacme.EndpointCertificate)), path: "/certZ/"},
		{name: "account lock", block: "lock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := startCA(t, testacme.Options{})
			w := newWatch(tt.path)
			cfg := testConfig(t, ca)
			cfg.HTTPClient = watchedClient(ca, w)
			cfg.CleanupTimeout = 20 * time.Second // longer than cancelWithin: a clean-up that waits out its timeout fails
			entered := make(chan struct{})
			var once sync.Once
			signal := func() { once.Do(func() { close(entered) }) }
			switch {
			case tt.path != "":
				entered = w.seen
			case tt.block == "present":
				cfg.HTTP01 = nil
				cfg.DNS01 = &DNS01{Provider: blockingProvider{entered: signal}, SkipPropagationCheck: true}
			case tt.dns:
				cfg.HTTP01 = nil
				cfg.DNS01 = &DNS01{Provider: signalProvider{signal}, Resolvers: []string{ca.DNSAddr()}, PropagationInterval: 5 * time.Millisecond}
			case tt.block == "lock":
				l, err := lockfile.Acquire(t.Context(), filepath.Join(cfg.AccountDir, accountLockFile))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Unlock()
				close(entered) // the Issuer will wait on the lock from its start
			}
			journal := func(context.Context, renew.InFlight) error { return nil }
			if tt.block == "journal" {
				journal = func(ctx context.Context, _ renew.InFlight) error {
					signal()
					<-ctx.Done()
					return ctx.Err()
				}
			}
			iss := newTestIssuer(t, cfg)
			if tt.fault != nil {
				defer ca.Inject(*tt.fault)()
			}

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			type result struct {
				err error
				at  time.Time
			}
			done := make(chan result, 1)
			go func() {
				_, err := iss.Issue(ctx, renew.IssueRequest{Name: "cancel", Domains: []string{domain("cancel")}, Key: mustKey(t, renew.EC256), Profile: "default"}, journal)
				done <- result{err, time.Now()}
			}()
			select {
			case <-entered:
			case r := <-done:
				t.Fatalf("Issue returned before reaching the stage: %v", r.err)
			case <-time.After(20 * time.Second):
				t.Fatal("the stage was never reached")
			}
			cancelled := time.Now()
			cancel()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Issue did not return after cancel")
			}
			if !errors.Is(r.err, context.Canceled) {
				t.Errorf("err = %v, want errors.Is(err, context.Canceled)", r.err)
			}
			if d := r.at.Sub(cancelled); d > cancelWithin {
				t.Errorf("Issue returned %v after cancel, want within %v", d, cancelWithin)
			}
		})
	}
}

// cancelWithin is how soon after its ctx is cancelled Issue must return in
// TestCancelAtEachStage.
const cancelWithin = 5 * time.Second

func ptr[T any](v T) *T { return &v }

// blockingProvider's Present waits for ctx to end.
type blockingProvider struct{ entered func() }

func (p blockingProvider) Present(ctx context.Context, _, _, _ string) error {
	p.entered()
	<-ctx.Done()
	return ctx.Err()
}
func (blockingProvider) CleanUp(context.Context, string, string, string) error { return nil }

// signalProvider publishes nothing, so propagation never completes.
type signalProvider struct{ entered func() }

func (p signalProvider) Present(context.Context, string, string, string) error {
	p.entered()
	return nil
}
func (signalProvider) CleanUp(context.Context, string, string, string) error { return nil }

// TestStallPastClientTimeout: a CA that never answers, with the HTTP
// client's timeout (not the caller's context) ending the wait, is transient.
// The timeout applies to every request, so it must exceed what an answered
// one takes on a loaded machine: at 200 ms, the directory request missed it.
func TestStallPastClientTimeout(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := fastConfig(t, ca)
	cfg.HTTPClient = func() *http.Client {
		c := ca.HTTPClient()
		c.Timeout = 3 * time.Second
		return c
	}
	iss := newTestIssuer(t, cfg)
	if err := iss.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer ca.Inject(testacme.Fault{Endpoint: testacme.EndpointFinalize, Kind: testacme.FaultStall, Count: 1})()
	_, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "stall", Domains: []string{domain("stall")}, Key: mustKey(t, renew.EC256), Profile: "default"},
		func(context.Context, renew.InFlight) error { return nil })
	checkClass(t, err, classTransient)
	if !strings.Contains(fmt.Sprint(err), "finalize") {
		t.Errorf("message %q does not name the step", err)
	}
}
