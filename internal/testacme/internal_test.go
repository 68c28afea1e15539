package testacme

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/loopport"
)

// signalHandler is a slog.Handler that closes ch at the first record whose
// message is msg.
type signalHandler struct {
	msg string
	ch  chan struct{}
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case <-h.ch:
		default:
			close(h.ch)
		}
	}
	return nil
}
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }

// A POST held by FaultStall or FaultDelay ends when its client gives up,
// not when the server closes. It did not: net/http ends a request's
// context on a closed connection only once the body has been read, and the
// fault held the request before anything read it. The held request then
// outlived the test that caused it, and TestCancelAtEachStage's subtests,
// sharing one server, found requests of earlier ones still running.
func TestHeldPostEndsWhenClientGivesUp(t *testing.T) {
	for _, f := range []Fault{
		{Endpoint: EndpointNewOrder, Kind: FaultStall},
		{Endpoint: EndpointNewOrder, Kind: FaultDelay, Release: make(chan struct{})},
	} {
		t.Run(f.Kind.String(), func(t *testing.T) {
			held := &signalHandler{msg: "fault injected", ch: make(chan struct{})}
			s, err := Start(Options{AlwaysValid: true, Logger: slog.New(held)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.Inject(f)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			url := strings.TrimSuffix(s.DirectoryURL(), "/dir") + "/order-plz"
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"protected":"","payload":"","signature":""}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/jose+json")
			done := make(chan error, 1)
			go func() {
				resp, err := s.HTTPClient().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			select {
			case <-held.ch:
			case err := <-done:
				t.Fatalf("the request returned before the fault held it: %v", err)
			}
			cancel()
			// The client's own result is not the point (it usually ends
			// with context.Canceled; a response racing the cancel may win):
			// the server's request must end.
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("client: %v, want context.Canceled or a response", err)
			}
			select {
			case <-s.reqs.idleCh():
			case <-time.After(time.Minute):
				t.Fatalf("%d requests still held a minute after their client gave up", s.reqs.count())
			}
		})
	}
}

// The DNS responder's TCP listener does not take a port that another test
// reserved with loopport (bound, not listening) for a listener of its own:
// a plain Go listener (SO_REUSEADDR) did, when the kernel's choice for the
// responder's UDP socket fell on it.
func TestDNSTCPSkipsReservedPort(t *testing.T) {
	port, release, err := loopport.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if ln, err := net.Listen("tcp4", addr); err != nil {
		t.Fatalf("a reserved port is meant to accept its owner's Go listener: %v", err)
	} else {
		ln.Close()
	}
	if ln, err := listenTCPExclusive(addr); err == nil {
		ln.Close()
		t.Fatalf("the responder's listener bound %s, reserved by someone else", addr)
	}
}
