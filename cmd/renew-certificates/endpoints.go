package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/renewkit/renewkit/internal/portholder"
	"github.com/renewkit/renewkit/renew"
)

// endpoints is -serve's HTTP server: /metrics, /healthz and /readyz.
type endpoints struct {
	// addr is the address actually listened on (serve.listen may say
	// port 0).
	addr string
	srv  *http.Server
	done chan struct{}
}

// startEndpoints listens on addr and serves in the background. /metrics
// serves the registry of whichever sink gather holds (a reload swaps it).
// A busy or unusable address is a *renew.LocalError.
func startEndpoints(addr string, ready *renew.Readiness, gather *atomic.Pointer[metricsSink], log *slog.Logger) (*endpoints, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if oe, ok := errors.AsType[*net.OpError](err); ok {
			err = oe.Err // "bind: address already in use"; the address is named in What
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			if _, port, _ := net.SplitHostPort(addr); port != "" && port != "0" {
				if holder := portholder.Describe(port); holder != "" {
					err = fmt.Errorf("%w (the port is held by %s)", err, holder)
				}
			}
		}
		return nil, &renew.LocalError{What: "serve.listen " + addr, Err: err, Fix: "free the address or set another with serve.listen or -listen"}
	}
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		s := gather.Load()
		if s == nil {
			return nil, nil
		}
		return s.reg.Gather()
	})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", ready)
	e := &endpoints{
		addr: ln.Addr().String(),
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(e.done)
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("endpoints stopped", "listen", e.addr, "error", err)
		}
	}()
	return e, nil
}

// stop shuts the server down, giving requests in flight a second.
func (e *endpoints) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.srv.Close()
	}
	<-e.done
}
