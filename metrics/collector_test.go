package metrics

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/renew"
)

// Fixed instants of the tests, with their Unix times.
var (
	tNow            = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)  // 1772323200
	tNotAfter       = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)  // 1777593600
	tRenewAt        = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)  // 1775001600
	tLastSuccess    = time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC) // 1769817600
	tRetryNotBefore = time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)  // 1772344800
)

func fixedClock() func() time.Time { return func() time.Time { return tNow } }

// allNames are the metric families the Collector exports, in the order of
// the package documentation.
var allNames = []string{
	"renewkit_certificate_info",
	"renewkit_certificate_not_after_timestamp_seconds",
	"renewkit_certificate_renew_at_timestamp_seconds",
	"renewkit_renewal_last_success_timestamp_seconds",
	"renewkit_renewal_consecutive_failures",
	"renewkit_renewal_retry_not_before_timestamp_seconds",
	"renewkit_deploy_hooks_pending",
	"renewkit_renewal_last_run_timestamp_seconds",
	"renewkit_renewal_last_run_ok",
	"renewkit_lock_held_seconds",
	"renewkit_renewal_runs_total",
	"renewkit_issuance_attempts_total",
	"renewkit_fleet_reachable",
}

// helpText is the HEADER of every family, as the expected text of
// CollectAndCompare needs it.
var helpText = map[string]string{
	"renewkit_certificate_info":                           "# HELP renewkit_certificate_info A lineage: its configured domains (comma-separated) and the serial number of its installed certificate (hex, empty if none). Always 1.\n# TYPE renewkit_certificate_info gauge\n",
	"renewkit_certificate_not_after_timestamp_seconds":    "# HELP renewkit_certificate_not_after_timestamp_seconds Expiry time (NotAfter) of the certificate installed for the lineage, in seconds since the Unix epoch.\n# TYPE renewkit_certificate_not_after_timestamp_seconds gauge\n",
	"renewkit_certificate_renew_at_timestamp_seconds":     "# HELP renewkit_certificate_renew_at_timestamp_seconds Time at which the installed certificate becomes due for renewal (policy or ACME renewal window), in seconds since the Unix epoch.\n# TYPE renewkit_certificate_renew_at_timestamp_seconds gauge\n",
	"renewkit_renewal_last_success_timestamp_seconds":     "# HELP renewkit_renewal_last_success_timestamp_seconds Time a certificate was last installed for the lineage, in seconds since the Unix epoch.\n# TYPE renewkit_renewal_last_success_timestamp_seconds gauge\n",
	"renewkit_renewal_consecutive_failures":               "# HELP renewkit_renewal_consecutive_failures Failed renewal attempts of the lineage in a row, across runs; 0 after a success.\n# TYPE renewkit_renewal_consecutive_failures gauge\n",
	"renewkit_renewal_retry_not_before_timestamp_seconds": "# HELP renewkit_renewal_retry_not_before_timestamp_seconds Time before which the lineage is not renewed again after failures (cross-run backoff), in seconds since the Unix epoch.\n# TYPE renewkit_renewal_retry_not_before_timestamp_seconds gauge\n",
	"renewkit_deploy_hooks_pending":                       "# HELP renewkit_deploy_hooks_pending Deploy hook runs still pending for certificates installed in the lineage; later runs retry them.\n# TYPE renewkit_deploy_hooks_pending gauge\n",
	"renewkit_renewal_last_run_timestamp_seconds":         "# HELP renewkit_renewal_last_run_timestamp_seconds Time the last renewal run of the lineage observed by this process finished, in seconds since the Unix epoch.\n# TYPE renewkit_renewal_last_run_timestamp_seconds gauge\n",
	"renewkit_renewal_last_run_ok":                        "# HELP renewkit_renewal_last_run_ok Whether the last renewal run of the lineage observed by this process left it in a good state (renewed, recovered, not due, or handled by another holder of its lock): 1 if so, 0 if it failed, was interrupted or is backing off after failures.\n# TYPE renewkit_renewal_last_run_ok gauge\n",
	"renewkit_lock_held_seconds":                          "# HELP renewkit_lock_held_seconds How long another holder had held the lineage's lock when the last run observed by this process found it held (outcome locked or lock_stuck), in seconds; 0 when that run got the lock or the holder's start is unknown. A holder that is stopped or frozen keeps the lock: the value then grows run after run.\n# TYPE renewkit_lock_held_seconds gauge\n",
	"renewkit_renewal_runs_total":                         "# HELP renewkit_renewal_runs_total Renewal runs of the lineage observed by this process, by outcome.\n# TYPE renewkit_renewal_runs_total counter\n",
	"renewkit_issuance_attempts_total":                    "# HELP renewkit_issuance_attempts_total Certificate issuance attempts (ACME orders, new or resumed) of the lineage observed by this process, by result: success when the attempt obtained the certificate the run installed.\n# TYPE renewkit_issuance_attempts_total counter\n",
	"renewkit_fleet_reachable":                            "# HELP renewkit_fleet_reachable Fleet mode: whether the last renewal run of the lineage observed by this process could consult the fleet's etcd: 1 if so, 0 if the run was deferred because it could not. Absent outside fleet mode.\n# TYPE renewkit_fleet_reachable gauge\n",
}

// expected builds CollectAndCompare's expected text from samples per family
// (families without samples are left out, as the Collector leaves them).
func expected(samples map[string]string) string {
	var b strings.Builder
	for _, name := range allNames {
		if s, ok := samples[name]; ok {
			b.WriteString(helpText[name])
			b.WriteString(s)
		}
	}
	return b.String()
}

func compare(t *testing.T, c *Collector, samples map[string]string) {
	t.Helper()
	if err := testutil.CollectAndCompare(c, strings.NewReader(expected(samples)), allNames...); err != nil {
		t.Error(err)
	}
}

// renewed is the Result of a run that installed a certificate after one
// failed attempt, with a hook still pending.
func renewed() renew.Result {
	return renew.Result{
		Name: "web", Outcome: renew.Renewed, HookErr: errors.New("reload failed"),
		Generation: 4, Serial: "03ab", NotAfter: tNotAfter, RenewAt: tRenewAt,
		LastSuccess: tLastSuccess, HooksPending: 1, Attempts: 2, Issued: 1,
	}
}

func TestCollectorResults(t *testing.T) {
	t.Parallel()
	c := newCollector(fixedClock())
	c.Track(renew.Certificate{Name: "web", Domains: []string{"example.com", "www.example.com"}})
	c.Finished(renewed()) // 2 attempts, installed
	c.Finished(renew.Result{
		Name: "api", Outcome: renew.Failed, Err: errors.New("rate limited"),
		Failures: 2, RetryNotBefore: tRetryNotBefore, RenewAt: tNow, Attempts: 4,
	})

	compare(t, c, map[string]string{
		"renewkit_certificate_info":                           `renewkit_certificate_info{domains="example.com,www.example.com",name="web",serial="03ab"} 1` + "\n",
		"renewkit_certificate_not_after_timestamp_seconds":    `renewkit_certificate_not_after_timestamp_seconds{name="web"} 1777593600` + "\n",
		"renewkit_certificate_renew_at_timestamp_seconds":     `renewkit_certificate_renew_at_timestamp_seconds{name="web"} 1775001600` + "\n",
		"renewkit_renewal_last_success_timestamp_seconds":     `renewkit_renewal_last_success_timestamp_seconds{name="web"} 1769817600` + "\n",
		"renewkit_renewal_retry_not_before_timestamp_seconds": `renewkit_renewal_retry_not_before_timestamp_seconds{name="api"} 1772344800` + "\n",
		"renewkit_renewal_consecutive_failures": `renewkit_renewal_consecutive_failures{name="api"} 2
renewkit_renewal_consecutive_failures{name="web"} 0
`,
		"renewkit_deploy_hooks_pending": `renewkit_deploy_hooks_pending{name="api"} 0
renewkit_deploy_hooks_pending{name="web"} 1
`,
		"renewkit_renewal_last_run_timestamp_seconds": `renewkit_renewal_last_run_timestamp_seconds{name="api"} 1772323200
renewkit_renewal_last_run_timestamp_seconds{name="web"} 1772323200
`,
		"renewkit_renewal_last_run_ok": `renewkit_renewal_last_run_ok{name="api"} 0
renewkit_renewal_last_run_ok{name="web"} 1
`,
		"renewkit_lock_held_seconds": `renewkit_lock_held_seconds{name="api"} 0
renewkit_lock_held_seconds{name="web"} 0
`,
		"renewkit_renewal_runs_total": `renewkit_renewal_runs_total{name="api",outcome="failed"} 1
renewkit_renewal_runs_total{name="web",outcome="renewed"} 1
`,
		"renewkit_issuance_attempts_total": `renewkit_issuance_attempts_total{name="api",result="error"} 4
renewkit_issuance_attempts_total{name="web",result="error"} 1
renewkit_issuance_attempts_total{name="web",result="success"} 1
`,
	})
}

// TestCollectorStatelessResults: a Locked result, or a run that failed
// before it could read the lineage, must not wipe what is known.
func TestCollectorStatelessResults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		res  renew.Result
		ok   string
	}{
		{"locked", renew.Result{Name: "web", Outcome: renew.Locked, Reason: "held by pid 42"}, "1"},
		{"failed early", renew.Result{Name: "web", Outcome: renew.Failed, Err: errors.New("web: lineage directory is group-writable")}, "0"},
		{"interrupted early", renew.Result{Name: "web", Outcome: renew.Interrupted, Err: errors.New("context canceled")}, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(fixedClock())
			c.Finished(renewed())
			c.Finished(tc.res)
			compare(t, c, map[string]string{
				"renewkit_certificate_info":                        `renewkit_certificate_info{domains="",name="web",serial="03ab"} 1` + "\n",
				"renewkit_certificate_not_after_timestamp_seconds": `renewkit_certificate_not_after_timestamp_seconds{name="web"} 1777593600` + "\n",
				"renewkit_certificate_renew_at_timestamp_seconds":  `renewkit_certificate_renew_at_timestamp_seconds{name="web"} 1775001600` + "\n",
				"renewkit_renewal_last_success_timestamp_seconds":  `renewkit_renewal_last_success_timestamp_seconds{name="web"} 1769817600` + "\n",
				"renewkit_renewal_consecutive_failures":            `renewkit_renewal_consecutive_failures{name="web"} 0` + "\n",
				"renewkit_deploy_hooks_pending":                    `renewkit_deploy_hooks_pending{name="web"} 1` + "\n",
				"renewkit_renewal_last_run_timestamp_seconds":      `renewkit_renewal_last_run_timestamp_seconds{name="web"} 1772323200` + "\n",
				"renewkit_renewal_last_run_ok":                     `renewkit_renewal_last_run_ok{name="web"} ` + tc.ok + "\n",
				"renewkit_lock_held_seconds":                       `renewkit_lock_held_seconds{name="web"} 0` + "\n",
				"renewkit_renewal_runs_total": fmt.Sprintf(`renewkit_renewal_runs_total{name="web",outcome="renewed"} 1
renewkit_renewal_runs_total{name="web",outcome=%q} 1
`, tc.res.Outcome),
				"renewkit_issuance_attempts_total": `renewkit_issuance_attempts_total{name="web",result="error"} 1
renewkit_issuance_attempts_total{name="web",result="success"} 1
`,
			})
		})
	}
}

// TestCollectorNothingInstalled: a lineage without a certificate has no
// expiry series, and its "renew now" is not exported as a renewal time.
func TestCollectorNothingInstalled(t *testing.T) {
	t.Parallel()
	c := newCollector(fixedClock())
	c.Finished(renew.Result{Name: "new", Outcome: renew.Failed, Err: errors.New("dns"), RenewAt: tNow, Failures: 1, RetryNotBefore: tRetryNotBefore})
	compare(t, c, map[string]string{
		"renewkit_renewal_consecutive_failures":               `renewkit_renewal_consecutive_failures{name="new"} 1` + "\n",
		"renewkit_renewal_retry_not_before_timestamp_seconds": `renewkit_renewal_retry_not_before_timestamp_seconds{name="new"} 1772344800` + "\n",
		"renewkit_deploy_hooks_pending":                       `renewkit_deploy_hooks_pending{name="new"} 0` + "\n",
		"renewkit_renewal_last_run_timestamp_seconds":         `renewkit_renewal_last_run_timestamp_seconds{name="new"} 1772323200` + "\n",
		"renewkit_renewal_last_run_ok":                        `renewkit_renewal_last_run_ok{name="new"} 0` + "\n",
		"renewkit_lock_held_seconds":                          `renewkit_lock_held_seconds{name="new"} 0` + "\n",
		"renewkit_renewal_runs_total":                         `renewkit_renewal_runs_total{name="new",outcome="failed"} 1` + "\n",
	})
}

func TestCollectorStatus(t *testing.T) {
	t.Parallel()
	pending := []hooks.Entry{
		{Generation: 3, Pending: []hooks.PendingHook{{Name: "reload nginx"}, {Name: "notify"}}},
		{Generation: 4, Pending: []hooks.PendingHook{{Name: "reload nginx"}}},
	}
	c := newCollector(fixedClock())
	// Known from a run of this process: Status must not touch counters or
	// the last run, and a Status with Err must not reset the failures.
	c.Finished(renew.Result{Name: "broken", Outcome: renew.Failed, Err: errors.New("x"), Failures: 4, NotAfter: tNotAfter, Serial: "01"})
	c.ObserveStatus(
		renew.Status{
			Name: "web", Domains: []string{"example.com"}, Installed: true, Generation: 4, Serial: "03ab",
			NotAfter: tNotAfter, RenewAt: tRenewAt, LastSuccess: tLastSuccess, HooksPending: pending,
		},
		renew.Status{Name: "new", Domains: []string{"new.example"}, Due: true, RenewAt: tNow, Reason: "no certificate installed"},
		renew.Status{Name: "broken", Domains: []string{"broken.example"}, Installed: true, Serial: "02", NotAfter: tRenewAt,
			Err: errors.New("state.json: unexpected end of JSON input")},
	)
	compare(t, c, map[string]string{
		"renewkit_certificate_info": `renewkit_certificate_info{domains="broken.example",name="broken",serial="02"} 1
renewkit_certificate_info{domains="new.example",name="new",serial=""} 1
renewkit_certificate_info{domains="example.com",name="web",serial="03ab"} 1
`,
		"renewkit_certificate_not_after_timestamp_seconds": `renewkit_certificate_not_after_timestamp_seconds{name="broken"} 1775001600
renewkit_certificate_not_after_timestamp_seconds{name="web"} 1777593600
`,
		"renewkit_certificate_renew_at_timestamp_seconds": `renewkit_certificate_renew_at_timestamp_seconds{name="web"} 1775001600` + "\n",
		"renewkit_renewal_last_success_timestamp_seconds": `renewkit_renewal_last_success_timestamp_seconds{name="web"} 1769817600` + "\n",
		"renewkit_renewal_consecutive_failures": `renewkit_renewal_consecutive_failures{name="broken"} 4
renewkit_renewal_consecutive_failures{name="new"} 0
renewkit_renewal_consecutive_failures{name="web"} 0
`,
		"renewkit_deploy_hooks_pending": `renewkit_deploy_hooks_pending{name="broken"} 0
renewkit_deploy_hooks_pending{name="new"} 0
renewkit_deploy_hooks_pending{name="web"} 3
`,
		"renewkit_renewal_last_run_timestamp_seconds": `renewkit_renewal_last_run_timestamp_seconds{name="broken"} 1772323200` + "\n",
		"renewkit_renewal_last_run_ok":                `renewkit_renewal_last_run_ok{name="broken"} 0` + "\n",
		"renewkit_lock_held_seconds":                  `renewkit_lock_held_seconds{name="broken"} 0` + "\n",
		"renewkit_renewal_runs_total":                 `renewkit_renewal_runs_total{name="broken",outcome="failed"} 1` + "\n",
	})
}

// TestCollectorLint checks names, help and types against Prometheus'
// conventions (promlint), with every family present.
func TestCollectorLint(t *testing.T) {
	t.Parallel()
	c := newCollector(fixedClock())
	c.Track(renew.Certificate{Name: "web", Domains: []string{"example.com"}})
	c.Finished(renew.Result{Name: "web", Outcome: renew.Failed, Serial: "01", NotAfter: tNotAfter, RenewAt: tRenewAt,
		LastSuccess: tLastSuccess, Failures: 1, RetryNotBefore: tRetryNotBefore, HooksPending: 1, Attempts: 1, FleetGeneration: 3})
	if n := testutil.CollectAndCount(c); n != len(allNames) {
		t.Errorf("collected %d series, want one per family (%d)", n, len(allNames))
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// Describe announces exactly the families Collect produces.
	ch := make(chan *prometheus.Desc, 32)
	c.Describe(ch)
	close(ch)
	var described []string
	for d := range ch {
		described = append(described, d.String())
	}
	if len(described) != len(allNames) {
		t.Fatalf("Describe sent %d descriptions, want %d", len(described), len(allNames))
	}
	for i, name := range allNames {
		if !strings.Contains(described[i], `fqName: "`+name+`"`) {
			t.Errorf("description %d is %s, want %s", i, described[i], name)
		}
	}
}

// TestCollectorRegistry: the Collector registers with a dedicated registry
// (a checked collector: Describe and Collect agree), and twice is refused.
func TestCollectorRegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	c := newCollector(fixedClock())
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	c.Finished(renewed())
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	var are prometheus.AlreadyRegisteredError
	if err := reg.Register(New()); !errors.As(err, &are) {
		t.Errorf("second Register: %v, want AlreadyRegisteredError", err)
	}
}

// TestCollectorInvalidLabels: names come from configuration and reach the
// Collector unvalidated (Run reports invalid ones as Failed results); they
// must not make Collect panic or the scrape fail.
func TestCollectorInvalidLabels(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	c := newCollector(fixedClock())
	reg.MustRegister(c)
	c.Track(renew.Certificate{Name: "bad\xff", Domains: []string{"\xfe.example"}})
	c.Finished(renew.Result{Name: "bad\xff", Outcome: renew.Failed, Err: errors.New("invalid name")})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) == 0 {
		t.Fatal("nothing gathered")
	}
}

// TestCollectorConcurrent runs the Observer methods, ObserveStatus, Track
// and scrapes at once (meaningful under -race), then checks the counts.
func TestCollectorConcurrent(t *testing.T) {
	t.Parallel()
	const workers, runs = 8, 200
	reg := prometheus.NewRegistry()
	c := New()
	reg.MustRegister(c)
	var wg sync.WaitGroup
	for w := range workers {
		name := fmt.Sprintf("lineage-%d", w%4)
		wg.Go(func() {
			for i := range runs {
				c.Finished(renew.Result{Name: name, Outcome: renew.NotDue, NotAfter: tNotAfter.Add(time.Duration(i) * time.Second), Attempts: i % 2})
				c.ObserveStatus(renew.Status{Name: name, Installed: true, NotAfter: tNotAfter})
				c.Track(renew.Certificate{Name: name, Domains: []string{name + ".example"}})
			}
		})
	}
	wg.Go(func() {
		for range runs {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	var b strings.Builder
	b.WriteString(helpText["renewkit_renewal_runs_total"])
	for l := range 4 {
		fmt.Fprintf(&b, "renewkit_renewal_runs_total{name=\"lineage-%d\",outcome=\"not_due\"} %d\n", l, workers/4*runs)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(b.String()), "renewkit_renewal_runs_total"); err != nil {
		t.Error(err)
	}
}

func TestCarriesState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		res  renew.Result
		want bool
	}{
		{"locked", renew.Result{Outcome: renew.Locked, NotAfter: tNotAfter}, false},
		{"failed early", renew.Result{Outcome: renew.Failed, Err: errors.New("x")}, false},
		{"not due", renew.Result{Outcome: renew.NotDue, NotAfter: tNotAfter, RenewAt: tRenewAt}, true},
		{"first failure", renew.Result{Outcome: renew.Failed, Failures: 1}, true},
		{"renewed", renew.Result{Outcome: renew.Renewed, Generation: 1, Serial: "01"}, true},
		{"only hooks", renew.Result{Outcome: renew.Recovered, HooksPending: 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := carriesState(tc.res); got != tc.want {
				t.Errorf("carriesState = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCollectorKeepsRenewAt: a run that failed before it decided (no
// RenewAt in its Result) keeps the renewal time known for the same
// certificate; a new certificate without one has none.
func TestCollectorKeepsRenewAt(t *testing.T) {
	t.Parallel()
	c := newCollector(fixedClock())
	c.Finished(renewed())
	c.Finished(renew.Result{Name: "web", Outcome: renew.Failed, Err: errors.New("recover: disk full"),
		Serial: "03ab", NotAfter: tNotAfter, Failures: 1})
	want := `renewkit_certificate_renew_at_timestamp_seconds{name="web"} 1775001600` + "\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(helpText["renewkit_certificate_renew_at_timestamp_seconds"]+want),
		"renewkit_certificate_renew_at_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	c.Finished(renew.Result{Name: "web", Outcome: renew.Failed, Err: errors.New("x"), Serial: "04cd", NotAfter: tNotAfter, Failures: 2})
	if n := testutil.CollectAndCount(c, "renewkit_certificate_renew_at_timestamp_seconds"); n != 0 {
		t.Errorf("renew_at series for an unknown certificate: %d, want 0", n)
	}
}

func TestCollectorAttempts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		res            renew.Result
		success, error int
	}{
		{"none", renew.Result{Outcome: renew.NotDue}, 0, 0},
		{"first try", renew.Result{Outcome: renew.Renewed, Attempts: 1, Issued: 1}, 1, 0},
		{"third try", renew.Result{Outcome: renew.Renewed, Attempts: 3, Issued: 1}, 1, 2},
		{"all failed", renew.Result{Outcome: renew.Failed, Attempts: 4, Failures: 1}, 0, 4},
		{"interrupted", renew.Result{Outcome: renew.Interrupted, Attempts: 2}, 0, 2},
		{"rolled forward, no order", renew.Result{Outcome: renew.Recovered, Issued: 1, Generation: 2}, 0, 0},
		{"resumed", renew.Result{Outcome: renew.Recovered, Attempts: 1, Issued: 1, Generation: 2}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := New()
			tc.res.Name = "web"
			c.Finished(tc.res)
			var b strings.Builder
			if tc.error+tc.success > 0 {
				b.WriteString(helpText["renewkit_issuance_attempts_total"])
			}
			if tc.error > 0 {
				fmt.Fprintf(&b, "renewkit_issuance_attempts_total{name=\"web\",result=\"error\"} %d\n", tc.error)
			}
			if tc.success > 0 {
				fmt.Fprintf(&b, "renewkit_issuance_attempts_total{name=\"web\",result=\"success\"} %d\n", tc.success)
			}
			if err := testutil.CollectAndCompare(c, strings.NewReader(b.String()), "renewkit_issuance_attempts_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

// Regression: a stuck lock holder made every run report locked and the
// metrics say the last run was fine. The lock's age is exported, and a
// lock_stuck run is not OK and leaves the known state alone.
func TestLockHeldSeconds(t *testing.T) {
	t.Parallel()
	clk := fixedClock()
	c := newCollector(clk)
	c.Finished(renew.Result{Name: "web", Outcome: renew.NotDue, Serial: "01", NotAfter: tNotAfter, RenewAt: tRenewAt})
	c.Finished(renew.Result{Name: "web", Outcome: renew.Locked, LockHolder: 42, LockedSince: clk().Add(-90 * time.Second)})
	compareOnly(t, c, map[string]string{
		"renewkit_lock_held_seconds":   `renewkit_lock_held_seconds{name="web"} 90` + "\n",
		"renewkit_renewal_last_run_ok": `renewkit_renewal_last_run_ok{name="web"} 1` + "\n",
	})
	c.Finished(renew.Result{Name: "web", Outcome: renew.LockStuck, LockHolder: 42, LockedSince: clk().Add(-3 * time.Hour),
		Err: errors.New("lineage lock held longer than any run can take")})
	compareOnly(t, c, map[string]string{
		"renewkit_lock_held_seconds":                       `renewkit_lock_held_seconds{name="web"} 10800` + "\n",
		"renewkit_renewal_last_run_ok":                     `renewkit_renewal_last_run_ok{name="web"} 0` + "\n",
		"renewkit_certificate_not_after_timestamp_seconds": `renewkit_certificate_not_after_timestamp_seconds{name="web"} 1777593600` + "\n",
		"renewkit_renewal_runs_total": `renewkit_renewal_runs_total{name="web",outcome="lock_stuck"} 1
renewkit_renewal_runs_total{name="web",outcome="locked"} 1
renewkit_renewal_runs_total{name="web",outcome="not_due"} 1
`,
	})
	c.Finished(renew.Result{Name: "web", Outcome: renew.NotDue, Serial: "01", NotAfter: tNotAfter, RenewAt: tRenewAt})
	compareOnly(t, c, map[string]string{"renewkit_lock_held_seconds": `renewkit_lock_held_seconds{name="web"} 0` + "\n"})
}

// compareOnly is compare for the families in samples only.
func compareOnly(t *testing.T, c *Collector, samples map[string]string) {
	t.Helper()
	names := make([]string, 0, len(samples))
	for n := range samples {
		names = append(names, n)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(expected(samples)), names...); err != nil {
		t.Error(err)
	}
}

// renewkit_fleet_reachable follows the last run in fleet mode: absent
// outside it, 0 after a deferred run, 1 after a run that read the fleet,
// unchanged by an interrupted one.
func TestFleetReachable(t *testing.T) {
	t.Parallel()
	c := newCollector(fixedClock())
	c.Finished(renew.Result{Name: "single", Outcome: renew.NotDue, Serial: "01", NotAfter: tNotAfter, RenewAt: tRenewAt})
	compareOnly(t, c, map[string]string{"renewkit_fleet_reachable": ""})

	c.Finished(renew.Result{Name: "web", Outcome: renew.Deferred, Err: errors.New("renewal deferred: fleet unavailable")})
	compareOnly(t, c, map[string]string{"renewkit_fleet_reachable": `renewkit_fleet_reachable{name="web"} 0` + "\n"})
	c.Finished(renew.Result{Name: "web", Outcome: renew.Interrupted, Err: errors.New("context canceled")})
	compareOnly(t, c, map[string]string{"renewkit_fleet_reachable": `renewkit_fleet_reachable{name="web"} 0` + "\n"})
	// Not due, and the fleet has no generation yet (FleetGeneration 0):
	// after a deferred run, any other outcome means the fleet answered.
	c.Finished(renew.Result{Name: "web", Outcome: renew.Failed, Err: errors.New("rate limited"), Failures: 1})
	compareOnly(t, c, map[string]string{"renewkit_fleet_reachable": `renewkit_fleet_reachable{name="web"} 1` + "\n"})
	c.Finished(renew.Result{Name: "api", Outcome: renew.Recovered, Serial: "02", NotAfter: tNotAfter, FleetGeneration: 7})
	compareOnly(t, c, map[string]string{"renewkit_fleet_reachable": `renewkit_fleet_reachable{name="api"} 1
renewkit_fleet_reachable{name="web"} 1
`})
}
