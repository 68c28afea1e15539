package renew

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
)

// Readiness answers a readiness probe (Kubernetes' /readyz) for the
// certificates of a Renewer: it is an [Observer] that keeps the last known
// state of each configured certificate, and an http.Handler that answers
// 200 when every one is ready and 503 otherwise, with a JSON report either
// way. Use it beside metrics.Collector (a Renewer's Observer can be both,
// through a small fan-out). The zero value is ready to use and reports on
// no certificate until [Readiness.Configure]. Safe for concurrent use;
// Finished takes a short lock and never blocks.
//
// A certificate fails readiness when
//   - no certificate is installed, or it has expired;
//   - its alert level (expiry.AlertLevel, computed at the request) is at or
//     past the configured level: renewal should have happened by then;
//   - its last renewal failed permanently (the CA refused the order, a
//     local problem such as a busy port or refused DNS credentials):
//     retrying will not help until someone changes something.
//
// A transient failure (the CA unreachable, a 5xx, a rate limit), a lock
// held by a stuck process, a run deferred because the fleet's etcd could
// not be consulted (fleet mode) and failing deploy hooks are listed as
// warnings but keep it ready: the certificate is still valid, and a pod
// whose readiness follows a CA outage would drop its web server from the
// Service for nothing.
//
// The report (JSON) has the fields ready (bool), certificates (how many),
// failing and warnings (lists of {name, problem, not_after, alert}),
// ready_level, and, in fleet mode, fleet: {reachable, error}, reachable
// being null before any run ended and false when the last run of a
// certificate was deferred.
type Readiness struct {
	// Now is the clock alert levels are computed with. Nil means
	// time.Now. Set it before the first use.
	Now func() time.Time

	mu    sync.Mutex
	level expiry.Level
	names []string
	certs map[string]*readyState
	fleet bool
}

var (
	_ Observer     = (*Readiness)(nil)
	_ http.Handler = (*Readiness)(nil)
)

// readyState is what Readiness knows of one certificate.
type readyState struct {
	notBefore, notAfter time.Time
	// permanent is the error of the last run when it failed permanently,
	// until a run succeeds; transient likewise for other failures.
	permanent, transient string
	// hooks is the last hook failure, until hooks succeed.
	hooks string
	// deferred is the error of the last run when the fleet could not be
	// consulted (Deferred), until a run reaches it; ran is set once a run
	// of the certificate ended.
	deferred string
	ran      bool
}

// Configure sets the certificates to report on, keeping what is known of
// those configured before (call it again after a configuration reload),
// and takes their state from disk with r.Status: a restart does not make
// a certificate whose last renewal the CA refused look ready. level is the
// alert level at or past which a certificate fails; zero
// (expiry.LevelOK, which would fail every certificate) means
// expiry.LevelWarning. r's Fleet decides whether the report has a fleet
// part.
func (rd *Readiness) Configure(r *Renewer, level expiry.Level, certs ...Certificate) {
	rd.configure(certs, level, r.Status(certs...), r.Fleet != nil)
}

// configure is Configure with the statuses given.
func (rd *Readiness) configure(certs []Certificate, level expiry.Level, sts []Status, fleet bool) {
	if level == expiry.LevelOK {
		level = expiry.LevelWarning
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.level = level
	rd.fleet = fleet
	old := rd.certs
	rd.certs = make(map[string]*readyState, len(certs))
	rd.names = rd.names[:0]
	for _, c := range certs {
		st := old[c.Name]
		if st == nil {
			st = &readyState{}
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
		if s.LastOutcome == Failed && st.permanent == "" && st.transient == "" {
			// As Finished would have said it.
			if s.LastErrorPermanent {
				st.permanent = s.LastError
			} else {
				st.transient = s.LastError
			}
		}
	}
}

// Finished implements Observer.
func (rd *Readiness) Finished(res Result) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	st := rd.certs[res.Name]
	if st == nil {
		return // not configured (any more)
	}
	if !res.NotAfter.IsZero() {
		st.notBefore, st.notAfter = res.NotBefore, res.NotAfter
	}
	st.ran = true
	st.deferred = ""
	errText := func() string {
		if res.Err == nil {
			return string(res.Outcome)
		}
		return res.Err.Error()
	}
	switch res.Outcome {
	case Deferred:
		// Nothing was tried: the failures known before still stand.
		st.deferred = errText()
	case Renewed, Recovered, NotDue:
		st.permanent, st.transient = "", ""
	case LockStuck:
		// Nothing renews the lineage while the stuck holder keeps the
		// lock: a warning, like a failure that may pass.
		st.transient = errText()
	case Failed:
		if backoff.ClassOf(res.Err) == backoff.ClassPermanent {
			st.permanent, st.transient = errText(), ""
		} else {
			st.transient = errText()
		}
	}
	switch {
	case res.HookErr != nil:
		// A count and a pointer, not the error: a hook's output (which
		// its error quotes) may hold secrets, and readiness is served.
		st.hooks = fmt.Sprintf("deploy hooks failed: %d runs pending; the hook's error and output are in the log (hook_error)", max(res.HooksPending, 1))
	case res.HooksPending == 0 && res.Outcome != Locked:
		st.hooks = ""
	}
}

// readyReport is the JSON report.
type readyReport struct {
	Ready        bool         `json:"ready"`
	Certificates int          `json:"certificates"`
	Failing      []readyEntry `json:"failing"`
	Warnings     []readyEntry `json:"warnings,omitempty"`
	ReadyLevel   string       `json:"ready_level"`
	Fleet        *readyFleet  `json:"fleet,omitempty"`
}

// readyFleet is the report's fleet part (see Readiness).
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

// report evaluates every configured certificate now.
func (rd *Readiness) report() readyReport {
	now := time.Now()
	if rd.Now != nil {
		now = rd.Now()
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	level := rd.level
	if level == expiry.LevelOK {
		level = expiry.LevelWarning // never configured
	}
	rep := readyReport{Certificates: len(rd.names), Failing: []readyEntry{}, ReadyLevel: level.String()}
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
		case alert >= level:
			fail("%s left, at alert level %s (ready level %s): renewal is overdue", st.notAfter.Sub(now).Round(time.Second), alert, level)
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
		rep.Fleet = f
	}
	return rep
}

// ServeHTTP answers the probe: 200 when every configured certificate is
// ready, 503 otherwise, with the report as JSON either way (never cached).
func (rd *Readiness) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
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
