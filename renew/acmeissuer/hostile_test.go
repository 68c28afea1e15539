package acmeissuer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

// Regression (issue 11, item 5): response bodies were read whole. An endless
// body grew the process by its size (2.7 GB RSS per GiB sent) and a 10 MiB
// error page became a 10 MiB error, logged and stored on every attempt. Every
// body is now cut off at the transport, and CA text is clipped in errors.
func TestHostileCABodies(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	iss := newTestIssuer(t, fastConfig(t, ca))
	if err := iss.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	longDetail := strings.Repeat("détail ", 20000) // 160 KB, under no limit
	tests := []struct {
		name     string
		fault    testacme.Fault
		want     class
		tooLarge bool // the error matches errResponseTooLarge
	}{
		{"10 MiB error page", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultHTML, BodySize: 10 << 20, Count: 1}, classTransient, true},
		{"60 KiB error page", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultHTML, Status: 502, BodySize: 60 << 10, Count: 1}, classTransient, false},
		{"endless 200 body on an order poll", testacme.Fault{Endpoint: testacme.EndpointOrder, Kind: testacme.FaultBody, BodySize: -1, Count: 1}, classPermanent, true},
		{"endless 500 body", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultBody, Status: 500, BodySize: -1, Count: 1}, classTransient, true},
		{"2 MiB certificate", testacme.Fault{Endpoint: testacme.EndpointCertificate, Kind: testacme.FaultBody, BodySize: 2 << 20}, classPermanent, true},
		{"huge problem detail", testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "caa", Status: 403, Detail: longDetail[:60000], Count: 1}, classPermanent, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ca.FaultStats().BodyBytes
			remove := ca.Inject(tt.fault)
			defer remove()
			_, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "hostile", Domains: []string{domain("hostile")}, Key: mustKey(t, renew.EC256), Profile: "default"},
				func(context.Context, renew.InFlight) error { return nil })
			if err == nil {
				t.Fatal("Issue succeeded")
			}
			checkClass(t, err, tt.want)
			if got := errors.Is(err, errResponseTooLarge); got != tt.tooLarge {
				t.Errorf("errors.Is(err, errResponseTooLarge) = %v, want %v: %v", got, tt.tooLarge, err)
			}
			if msg := err.Error(); len(msg) > 4<<10 {
				t.Errorf("error message is %d bytes, want at most 4 KiB: %.300s…", len(msg), msg)
			}
			var e *Error
			if errors.As(err, &e) && len(e.Detail) > 2<<10 {
				t.Errorf("Error.Detail is %d bytes", len(e.Detail))
			}
			if tt.fault.BodySize < 0 {
				// The server streams until the client hangs up: what it
				// got out is the limit plus what socket buffers held.
				sent := ca.FaultStats().BodyBytes - before
				if sent > 64<<20 {
					t.Errorf("the client took %d bytes of an endless body", sent)
				}
				t.Logf("the server wrote %d bytes of the endless body before the client hung up", sent)
			}
		})
	}
}

// Regression (issue 11, item 7): a challenge the CA reports failed but
// leaves "pending" (step-ca: status pending, error connection, no retry of
// its own) was polled until ValidationTimeout and the CA's reason dropped.
// The attempt now fails at once with the CA's error.
func TestChallengePendingWithError(t *testing.T) {
	ca := startCA(t, testacme.Options{AlwaysValid: true})
	cfg := fastConfig(t, ca)
	cfg.ValidationTimeout = 3 * time.Second // what the old code waited out
	iss := newTestIssuer(t, cfg)
	if err := iss.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	const detail = "Connection refused by 192.0.2.1:80"
	for _, ep := range []testacme.Endpoint{testacme.EndpointChallenge, testacme.EndpointAuthz} {
		t.Run(string(ep), func(t *testing.T) {
			remove := ca.Inject(testacme.Fault{Endpoint: ep, Kind: testacme.FaultPendingError, Detail: detail})
			defer remove()
			_, err := iss.Issue(t.Context(), renew.IssueRequest{Name: "stuck", Domains: []string{domain("stuck")}, Key: mustKey(t, renew.EC256), Profile: "default"},
				func(context.Context, renew.InFlight) error { return nil })
			if err == nil {
				t.Fatal("Issue succeeded")
			}
			checkClass(t, err, classPermanent)
			var e *Error
			if !errors.As(err, &e) || e.ProblemType != problemNS+"connection" || e.Detail != detail || !strings.HasPrefix(e.Step, "challenge http-01") {
				t.Fatalf("err = %v (%+v), want the CA's connection problem at the challenge step", err, e)
			}
		})
	}
}
