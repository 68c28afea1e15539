package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
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
func startEndpoints(addr string, ready *readiness, gather *atomic.Pointer[metricsSink], log *slog.Logger) (*endpoints, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
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
	mux.HandleFunc("GET /readyz", ready.serveHTTP)
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

// readiness is what /readyz answers: a renew.Observer that keeps the last
// known state of each configured certificate. It is safe for concurrent
// use; Finished takes a short lock and never blocks.
//
// A certificate fails readiness when
//   - no certificate is installed, or it has expired;
//   - its alert level (expiry.AlertLevel, computed at the request) is at or
//     past serve.ready_level: renewal should have happened by then;
//   - its last renewal failed permanently (the CA refused the order, a
//     local problem such as a busy port or refused DNS credentials):
//     retrying will not help until someone changes something.
//
// A transient failure (the CA unreachable, a 5xx, a rate limit), a run
// deferred because the fleet's etcd could not be consulted (fleet mode) and
// failing deploy hooks are listed as warnings but keep it ready: the
// certificate is still valid, and a pod whose readiness follows a CA outage
// would drop its web server from the Service for nothing.
type readiness struct {
	now func() time.Time

	mu    sync.Mutex
	level expiry.Level
	names []string
	certs map[string]*certState
	// fleet is set in fleet mode: the report then says whether the fleet
	// answered the last run of each certificate.
	fleet bool
}

// certState is what readiness knows of one certificate.
type certState struct {
	notBefore, notAfter time.Time
	// permanent is the error of the last run when it failed permanently,
	// until a run succeeds; transient likewise for other failures.
	permanent, transient string
	// hooks is the last hook failure, until hooks succeed.
	hooks string
	// deferred is the error of the last run when the fleet could not be
	// consulted (renew.Deferred), until a run reaches it; ran is set once
	// a run of the certificate ended.
	deferred string
	ran      bool
}

func newReadiness(now func() time.Time) *readiness {
	return &readiness{now: now, level: defaultReadyLevel, certs: map[string]*certState{}}
}

// configure sets the certificates to report on (keeping what is known of
// those configured before) and takes their state from disk.
func (rd *readiness) configure(certs []renew.Certificate, level expiry.Level, sts []renew.Status, fleet bool) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.level = level
	rd.fleet = fleet
	old := rd.certs
	rd.certs = make(map[string]*certState, len(certs))
	rd.names = rd.names[:0]
	for _, c := range certs {
		st := old[c.Name]
		if st == nil {
			st = &certState{}
		}
		rd.certs[c.Name] = st
		rd.names = append(rd.names, c.Name)
	}
	for _, s := range sts {
		st := rd.certs[s.Name]
		if st == nil {
			continue
		}
		if s.Installed {
			st.notBefore, st.notAfter = s.NotBefore, s.NotAfter
		}
		if s.LastOutcome == renew.Failed && st.permanent == "" && st.transient == "" {
			// As Finished would have said it: a restart must not make a
			// certificate the CA refuses look ready.
			if s.LastErrorPermanent {
				st.permanent = s.LastError
			} else {
				st.transient = s.LastError
			}
		}
	}
}

// Finished implements renew.Observer.
func (rd *readiness) Finished(res renew.Result) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	st := rd.certs[res.Name]
	if st == nil {
		return // no longer configured
	}
	if !res.NotAfter.IsZero() {
		st.notBefore, st.notAfter = res.NotBefore, res.NotAfter
	}
	st.ran = true
	st.deferred = ""
	switch res.Outcome {
	case renew.Deferred:
		// Nothing was tried: the failures known before still stand.
		st.deferred = res.Err.Error()
	case renew.Renewed, renew.Recovered, renew.NotDue:
		st.permanent, st.transient = "", ""
	case renew.LockStuck:
		// Nothing renews the lineage while the stuck holder keeps the
		// lock: a warning, like a failure that may pass.
		st.transient = res.Err.Error()
	case renew.Failed:
		if backoff.ClassOf(res.Err) == backoff.ClassPermanent {
			st.permanent, st.transient = res.Err.Error(), ""
		} else {
			st.transient = res.Err.Error()
		}
	}
	switch {
	case res.HookErr != nil:
		st.hooks = res.HookErr.Error()
	case res.HooksPending == 0 && res.Outcome != renew.Locked:
		st.hooks = ""
	}
}

// readyReport is /readyz's JSON body.
type readyReport struct {
	Ready        bool         `json:"ready"`
	Certificates int          `json:"certificates"`
	Failing      []readyEntry `json:"failing"`
	Warnings     []readyEntry `json:"warnings,omitempty"`
	ReadyLevel   string       `json:"ready_level"`
	// Fleet is set in fleet mode.
	Fleet *readyFleet `json:"fleet,omitempty"`
}

// readyFleet says whether the fleet's etcd answered the last run of every
// certificate: Reachable is null before any run ended, false when the
// last run of at least one certificate was deferred (Error says why). An
// unreachable fleet is a warning, not a failure: the installed
// certificates are still valid and served.
type readyFleet struct {
	Reachable *bool  `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// readyEntry is one certificate's problem.
type readyEntry struct {
	Name     string     `json:"name"`
	Problem  string     `json:"problem"`
	NotAfter *time.Time `json:"not_after,omitempty"`
	Alert    string     `json:"alert,omitempty"`
}

// report evaluates every configured certificate at now.
func (rd *readiness) report() readyReport {
	now := rd.now()
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rep := readyReport{Certificates: len(rd.names), Failing: []readyEntry{}, ReadyLevel: rd.level.String()}
	for _, name := range rd.names {
		st := rd.certs[name]
		e := readyEntry{Name: name}
		alert := expiry.LevelExpired
		if !st.notAfter.IsZero() {
			na := st.notAfter
			e.NotAfter = &na
			alert = expiry.AlertLevel(now, expiry.Validity{NotBefore: st.notBefore, NotAfter: st.notAfter})
			e.Alert = alert.String()
		}
		fail := func(format string, args ...any) {
			f := e
			f.Problem = fmt.Sprintf(format, args...)
			rep.Failing = append(rep.Failing, f)
		}
		switch {
		case st.notAfter.IsZero():
			switch {
			case st.permanent != "":
				fail("no certificate installed; cannot be renewed: %s", st.permanent)
			case st.transient != "":
				fail("no certificate installed; renewal failing: %s", st.transient)
			default:
				fail("no certificate installed yet")
			}
		case alert == expiry.LevelExpired:
			fail("expired at %s", st.notAfter.UTC().Format(time.RFC3339))
		case alert >= rd.level:
			fail("%s left, at alert level %s (ready_level %s): renewal is overdue", st.notAfter.Sub(now).Round(time.Second), alert, rd.level)
		case st.permanent != "":
			fail("cannot be renewed: %s", st.permanent)
		}
		for _, w := range []string{st.transient, st.hooks, st.deferred} {
			if w != "" {
				x := e
				x.Problem = w
				rep.Warnings = append(rep.Warnings, x)
			}
		}
	}
	rep.Ready = len(rep.Failing) == 0
	if rd.fleet {
		rep.Fleet = rd.fleetReport()
	}
	return rep
}

// fleetReport is the report's fleet part; rd.mu is held.
func (rd *readiness) fleetReport() *readyFleet {
	f := &readyFleet{}
	ran, reachable := false, true
	for _, name := range rd.names {
		st := rd.certs[name]
		ran = ran || st.ran
		if st.deferred != "" && reachable {
			reachable, f.Error = false, st.deferred
		}
	}
	if ran {
		f.Reachable = &reachable
	}
	return f
}

// serveHTTP answers /readyz: 200 when every certificate is ready, 503
// otherwise, with the report as JSON either way.
func (rd *readiness) serveHTTP(w http.ResponseWriter, _ *http.Request) {
	rep := rd.report()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rep.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep) // the client went away; nothing to do
}
