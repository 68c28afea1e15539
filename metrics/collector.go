package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/renewkit/renewkit/renew"
)

// Compile-time checks: a Collector is both what a Renewer reports to and
// what a Prometheus registry collects from.
var (
	_ renew.Observer       = (*Collector)(nil)
	_ prometheus.Collector = (*Collector)(nil)
)

// Label values of renewkit_issuance_attempts_total.
const (
	resultSuccess = "success"
	resultError   = "error"
)

// descs are the metric descriptions, built once per Collector (a Desc is
// immutable, but a package-level one would be shared mutable-looking state).
type descs struct {
	info, notAfter, renewAt, lastSuccess, failures, retryNotBefore,
	hooksPending, lastRun, lastRunOK, lockHeld, runs, attempts, fleetReachable *prometheus.Desc
}

func newDescs() descs {
	name := []string{"name"}
	return descs{
		info: prometheus.NewDesc("renewkit_certificate_info",
			"A lineage: its configured domains (comma-separated) and the serial number of its installed certificate (hex, empty if none). Always 1.",
			[]string{"name", "domains", "serial"}, nil),
		notAfter: prometheus.NewDesc("renewkit_certificate_not_after_timestamp_seconds",
			"Expiry time (NotAfter) of the certificate installed for the lineage, in seconds since the Unix epoch.",
			name, nil),
		renewAt: prometheus.NewDesc("renewkit_certificate_renew_at_timestamp_seconds",
			"Time at which the installed certificate becomes due for renewal (policy or ACME renewal window), in seconds since the Unix epoch.",
			name, nil),
		lastSuccess: prometheus.NewDesc("renewkit_renewal_last_success_timestamp_seconds",
			"Time a certificate was last installed for the lineage, in seconds since the Unix epoch.",
			name, nil),
		failures: prometheus.NewDesc("renewkit_renewal_consecutive_failures",
			"Failed renewal attempts of the lineage in a row, across runs; 0 after a success.",
			name, nil),
		retryNotBefore: prometheus.NewDesc("renewkit_renewal_retry_not_before_timestamp_seconds",
			"Time before which the lineage is not renewed again after failures (cross-run backoff), in seconds since the Unix epoch.",
			name, nil),
		hooksPending: prometheus.NewDesc("renewkit_deploy_hooks_pending",
			"Deploy hook runs still pending for certificates installed in the lineage; later runs retry them.",
			name, nil),
		lastRun: prometheus.NewDesc("renewkit_renewal_last_run_timestamp_seconds",
			"Time the last renewal run of the lineage observed by this process finished, in seconds since the Unix epoch.",
			name, nil),
		lastRunOK: prometheus.NewDesc("renewkit_renewal_last_run_ok",
			"Whether the last renewal run of the lineage observed by this process left it in a good state (renewed, recovered, not due, or handled by another holder of its lock): 1 if so, 0 if it failed, was interrupted or is backing off after failures.",
			name, nil),
		lockHeld: prometheus.NewDesc("renewkit_lock_held_seconds",
			"How long another holder had held the lineage's lock when the last run observed by this process found it held (outcome locked or lock_stuck), in seconds; 0 when that run got the lock or the holder's start is unknown. A holder that is stopped or frozen keeps the lock: the value then grows run after run.",
			name, nil),
		runs: prometheus.NewDesc("renewkit_renewal_runs_total",
			"Renewal runs of the lineage observed by this process, by outcome.",
			[]string{"name", "outcome"}, nil),
		attempts: prometheus.NewDesc("renewkit_issuance_attempts_total",
			"Certificate issuance attempts (ACME orders, new or resumed) of the lineage observed by this process, by result: success when the attempt obtained the certificate the run installed.",
			[]string{"name", "result"}, nil),
		fleetReachable: prometheus.NewDesc("renewkit_fleet_reachable",
			"Fleet mode: whether the last renewal run of the lineage observed by this process could consult the fleet's etcd: 1 if so, 0 if the run was deferred because it could not. Absent outside fleet mode.",
			name, nil),
	}
}

// lineage is what the Collector knows of one lineage. Zero values mean
// unknown, except where a has* flag says otherwise.
type lineage struct {
	domains string
	serial  string

	// hasState is true once a Result or Status described the persisted
	// state; before, failures and hooksPending are unknown.
	hasState       bool
	notAfter       time.Time
	renewAt        time.Time
	lastSuccess    time.Time
	failures       int
	retryNotBefore time.Time
	hooksPending   int

	lastRun   time.Time // zero: no run finished in this process
	lastRunOK bool
	lockHeld  time.Duration // of the last run: how long another held the lock

	// fleetKnown is set once a run showed fleet mode (renew.Renewer.Fleet):
	// deferred, or with a fleet generation or lock node; fleetOK is
	// whether the last such run could consult the fleet.
	fleetKnown, fleetOK bool

	runs     map[renew.Outcome]uint64
	attempts map[string]uint64
}

// Collector is a Prometheus collector over lineages and renewal outcomes.
// Set it as a Renewer's Observer, register it with a registry (it
// implements [prometheus.Collector]), and optionally feed it Statuses
// (ObserveStatus) and configured domains (Track).
//
// The zero value is not usable; create one with [New]. A Collector is safe
// for concurrent use: the Observer methods take a short lock and never
// block on a scrape.
type Collector struct {
	now   func() time.Time
	descs descs

	mu       sync.Mutex
	lineages map[string]*lineage
}

// New returns an empty Collector. It registers nothing: pass it to a
// registry's Register (or MustRegister) yourself; a dedicated
// prometheus.NewRegistry() is recommended over the global default one.
func New() *Collector { return newCollector(time.Now) }

// newCollector is New with the clock that stamps
// renewkit_renewal_last_run_timestamp_seconds when a run finishes (a test
// seam).
func newCollector(now func() time.Time) *Collector {
	return &Collector{now: now, descs: newDescs(), lineages: make(map[string]*lineage)}
}

// get returns the lineage named name, creating it. c.mu must be held.
func (c *Collector) get(name string) *lineage {
	l := c.lineages[name]
	if l == nil {
		l = &lineage{}
		c.lineages[name] = l
	}
	return l
}

// Track records the configured domains of certs, for renewkit_certificate_info.
// Results do not carry domains, so a program that only observes a Renewer
// calls Track with the certificates it passes to Run or Serve. Track does
// no I/O.
func (c *Collector) Track(certs ...renew.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cert := range certs {
		c.get(cert.Name).domains = strings.Join(cert.Domains, ",")
	}
}

// Finished implements [renew.Observer]: it counts the run's outcome and its
// issuance attempts (Result.Attempts: the last one a success when the run
// installed a certificate it obtained, the others errors), stamps the
// lineage's last run, and takes the lineage's state from res.
//
// A Result that carries no state (Locked, or a run that failed before it
// could read the lineage: every state field zero) leaves the state known
// from earlier Results and Statuses as it was.
func (c *Collector) Finished(res renew.Result) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.get(res.Name)
	if l.runs == nil {
		l.runs = make(map[renew.Outcome]uint64, 2)
	}
	l.runs[res.Outcome]++
	l.lastRun, l.lastRunOK = now, res.Outcome.OK()
	switch {
	case res.Outcome == renew.Deferred:
		l.fleetKnown, l.fleetOK = true, false
	case res.Outcome == renew.Interrupted:
		// Stopped, perhaps before the fleet was asked: tells nothing.
	case res.FleetGeneration != 0 || res.LockNode != "" || l.fleetKnown:
		// Any other outcome in fleet mode follows a read of the fleet.
		l.fleetKnown, l.fleetOK = true, true
	}
	l.lockHeld = 0
	if (res.Outcome == renew.Locked || res.Outcome == renew.LockStuck) && !res.LockedSince.IsZero() {
		l.lockHeld = max(now.Sub(res.LockedSince), 0)
	}
	if res.Attempts > 0 {
		// The run's last attempt obtained the certificate it installed
		// (Issued), or every attempt failed.
		ok := min(res.Issued, 1)
		if l.attempts == nil {
			l.attempts = make(map[string]uint64, 2)
		}
		if ok > 0 {
			l.attempts[resultSuccess] += uint64(ok)
		}
		if n := res.Attempts - ok; n > 0 {
			l.attempts[resultError] += uint64(n)
		}
	}
	if !carriesState(res) {
		return
	}
	l.hasState = true
	switch {
	case res.NotAfter.IsZero():
		// Nothing installed: "due now" is not a renewal time.
		l.renewAt = time.Time{}
	case !res.RenewAt.IsZero() || res.Serial != l.serial:
		l.renewAt = res.RenewAt
	default:
		// A run that failed before deciding reports no renewal time; the
		// one known for the same certificate still holds.
	}
	l.serial = res.Serial
	l.notAfter = res.NotAfter
	l.lastSuccess = res.LastSuccess
	l.failures = res.Failures
	l.retryNotBefore = res.RetryNotBefore
	l.hooksPending = res.HooksPending
}

// carriesState reports whether res describes the lineage's persisted state.
// The Renewer returns Locked and LockStuck without reading the lineage, and a few early
// failures (an invalid certificate, an unusable lineage directory) with no
// state at all; a lineage that really has no state and no certificate ends
// a run with failures > 0 or a certificate, so an all-zero Result never
// hides real state.
func carriesState(res renew.Result) bool {
	if res.Outcome == renew.Locked || res.Outcome == renew.LockStuck {
		return false
	}
	return res.Generation != 0 || res.Serial != "" || !res.NotAfter.IsZero() ||
		!res.RenewAt.IsZero() || !res.LastSuccess.IsZero() || res.Failures != 0 ||
		!res.RetryNotBefore.IsZero() || res.HooksPending != 0
}

// ObserveStatus takes the state of each lineage from statuses, as read by
// [renew.Renewer.Status]: the way a one-shot program exports lineages it
// did not run (or a service primes the Collector before its first round).
// Domains come from the Status. A Status with Err set updates only the
// installed certificate, which it reads from disk. Counters and last-run
// series are left alone: a Status is not a run.
func (c *Collector) ObserveStatus(statuses ...renew.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range statuses {
		l := c.get(s.Name)
		if len(s.Domains) > 0 {
			l.domains = strings.Join(s.Domains, ",")
		}
		if s.Installed {
			l.serial, l.notAfter, l.renewAt = s.Serial, s.NotAfter, s.RenewAt
		}
		if s.Err != nil {
			// The persisted state could not be read (in full): keep what
			// is known of it rather than report zero failures.
			continue
		}
		if !s.Installed {
			l.serial, l.notAfter, l.renewAt = "", time.Time{}, time.Time{}
		}
		l.hasState = true
		l.lastSuccess = s.LastSuccess
		l.failures = s.Failures
		l.retryNotBefore = s.RetryNotBefore
		n := 0
		for _, e := range s.HooksPending {
			n += len(e.Pending)
		}
		l.hooksPending = n
	}
}

// Describe implements [prometheus.Collector].
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	d := c.descs
	for _, desc := range []*prometheus.Desc{d.info, d.notAfter, d.renewAt, d.lastSuccess, d.failures,
		d.retryNotBefore, d.hooksPending, d.lastRun, d.lastRunOK, d.lockHeld, d.runs, d.attempts, d.fleetReachable} {
		ch <- desc
	}
}

// snapshot is a copy of one lineage, taken under the lock so that Collect
// sends metrics without holding it.
type snapshot struct {
	name string
	lineage
	runs     []outcomeCount
	attempts []resultCount
}

type outcomeCount struct {
	outcome renew.Outcome
	n       uint64
}

type resultCount struct {
	result string
	n      uint64
}

func (c *Collector) snapshot() []snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]snapshot, 0, len(c.lineages))
	for name, l := range c.lineages {
		s := snapshot{name: name, lineage: *l}
		s.lineage.runs, s.lineage.attempts = nil, nil
		for o, n := range l.runs {
			s.runs = append(s.runs, outcomeCount{o, n})
		}
		for r, n := range l.attempts {
			s.attempts = append(s.attempts, resultCount{r, n})
		}
		out = append(out, s)
	}
	return out
}

// Collect implements [prometheus.Collector].
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	d := c.descs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	timestamp := func(desc *prometheus.Desc, t time.Time, name string) {
		if !t.IsZero() {
			gauge(desc, seconds(t), name)
		}
	}
	snaps := c.snapshot()
	slices.SortFunc(snaps, func(a, b snapshot) int { return strings.Compare(a.name, b.name) })
	for _, s := range snaps {
		// Label values must be valid UTF-8 or the metric is refused; names
		// come from configuration, which Run reports on but does not filter.
		s.name = strings.ToValidUTF8(s.name, "\uFFFD")
		if s.domains != "" || s.serial != "" {
			gauge(d.info, 1, s.name, strings.ToValidUTF8(s.domains, "\uFFFD"), strings.ToValidUTF8(s.serial, "\uFFFD"))
		}
		timestamp(d.notAfter, s.notAfter, s.name)
		timestamp(d.renewAt, s.renewAt, s.name)
		timestamp(d.lastSuccess, s.lastSuccess, s.name)
		timestamp(d.retryNotBefore, s.retryNotBefore, s.name)
		if s.hasState {
			gauge(d.failures, float64(s.failures), s.name)
			gauge(d.hooksPending, float64(s.hooksPending), s.name)
		}
		if !s.lastRun.IsZero() {
			gauge(d.lastRun, seconds(s.lastRun), s.name)
			gauge(d.lastRunOK, boolFloat(s.lastRunOK), s.name)
			gauge(d.lockHeld, s.lockHeld.Seconds(), s.name)
		}
		for _, r := range s.runs {
			ch <- prometheus.MustNewConstMetric(d.runs, prometheus.CounterValue, float64(r.n), s.name, string(r.outcome))
		}
		for _, a := range s.attempts {
			ch <- prometheus.MustNewConstMetric(d.attempts, prometheus.CounterValue, float64(a.n), s.name, a.result)
		}
		if s.fleetKnown {
			gauge(d.fleetReachable, boolFloat(s.fleetOK), s.name)
		}
	}
}

// seconds converts t to seconds since the Unix epoch, truncated to the
// millisecond: enough for renewal times, and short in the text format.
func seconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1e3
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
