package acmeissuer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/renew"
)

// loopbackDial maps every name to srv's loopback address.
func loopbackDial(srv *httptest.Server) func(context.Context, string, string) (net.Conn, error) {
	addr := srv.Listener.Addr().String()
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
}

func TestSelfCheckServedWebroot(t *testing.T) {
	webroot := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(webroot)))
	defer srv.Close()
	h := &HTTP01{Webroot: webroot, dial: loopbackDial(srv)}
	res := h.SelfCheck(t.Context(), []string{"a.example", "*.example", "b.example"})
	if len(res) != 2 {
		t.Fatalf("results %v, want a.example and b.example (wildcard skipped)", res)
	}
	for _, n := range []string{"a.example", "b.example"} {
		if err, ok := res[n]; !ok || err != nil {
			t.Errorf("%s: %v (present %v), want ok", n, err, ok)
		}
	}
	left, err := os.ReadDir(filepath.Join(webroot, challengeDir))
	if err != nil || len(left) != 0 {
		t.Errorf("challenge directory after the check: %v %v, want empty", left, err)
	}
}

func TestSelfCheckWrongDirectory(t *testing.T) {
	webroot, other := t.TempDir(), t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(other)))
	defer srv.Close()
	h := &HTTP01{Webroot: webroot, dial: loopbackDial(srv)}
	res := h.SelfCheck(t.Context(), []string{"a.example"})
	err := res["a.example"]
	if !errors.Is(err, renew.ErrLocal) {
		t.Fatalf("a.example: %v, want a *renew.LocalError", err)
	}
	for _, want := range []string{"webroot " + webroot, "http://a.example/.well-known/acme-challenge/renewkit-selfcheck-", "404", "serve " + webroot + " at / on port 80 for a.example"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestSelfCheckConnectionRefused(t *testing.T) {
	webroot := t.TempDir()
	srv := httptest.NewServer(http.NotFoundHandler())
	dial := loopbackDial(srv)
	srv.Close() // nothing listens there any more
	h := &HTTP01{Webroot: webroot, dial: dial}
	err := h.SelfCheck(t.Context(), []string{"a.example"})["a.example"]
	if err == nil || !strings.Contains(err.Error(), "connection: ") || !strings.Contains(err.Error(), "http://a.example/") {
		t.Fatalf("a.example: %v, want a connection error naming the URL", err)
	}
}

func TestSelfCheckNoWebroot(t *testing.T) {
	h := &HTTP01{Webroot: filepath.Join(t.TempDir(), "missing"), dial: func(context.Context, string, string) (net.Conn, error) {
		t.Error("dialled although the webroot is missing")
		return nil, errors.New("no")
	}}
	err := h.SelfCheck(t.Context(), []string{"a.example"})["a.example"]
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("a.example: %v, want the missing webroot", err)
	}
}
