package renew

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
)

// readyClock is a settable clock.
type readyClock struct{ t time.Time }

func (c *readyClock) now() time.Time { return c.t }

func TestReadiness(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clk := &readyClock{t: start}
	rd := &Readiness{Now: clk.now}
	certs := []Certificate{{Name: "a"}, {Name: "b"}}
	// a is installed on disk, valid 90 days from now; b is not.
	rd.configure(certs, expiry.LevelWarning, []Status{
		{Name: "a", Installed: true, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)},
		{Name: "b"},
	}, false)
	check := func(step string, want ...string) readyReport {
		t.Helper()
		rep := rd.report()
		var got []string
		for _, f := range rep.Failing {
			got = append(got, f.Name+": "+f.Problem)
		}
		if rep.Ready != (len(want) == 0) || len(got) != len(want) {
			t.Fatalf("%s: failing %q, want %q", step, got, want)
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Fatalf("%s: failing %q, want %q", step, got, want)
			}
		}
		return rep
	}
	check("primed", "b: no certificate installed yet")

	b := Result{Name: "b", Outcome: Renewed, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)}
	rd.Finished(b)
	check("b issued")

	// A transient failure keeps a ready and is a warning.
	transient := Result{Name: "a", Outcome: Failed, Err: backoff.Transient(errors.New("connection reset")), NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)}
	rd.Finished(transient)
	if rep := check("transient failure"); len(rep.Warnings) != 1 || rep.Warnings[0].Problem != "connection reset" {
		t.Errorf("warnings %+v", rep.Warnings)
	}
	// Backing off afterwards keeps the warning; time passing to the
	// warning level (14 days left) makes a not ready.
	rd.Finished(Result{Name: "a", Outcome: BackingOff, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	clk.t = start.Add(76*24*time.Hour + time.Minute)
	check("14 days left", "a: ", "b: ")
	if rep := rd.report(); rep.Failing[0].Alert != "warning" || !strings.Contains(rep.Failing[0].Problem, "renewal is overdue") {
		t.Errorf("a past the threshold: %+v", rep.Failing[0])
	}
	clk.t = start.Add(91 * 24 * time.Hour)
	check("expired", "a: expired at ", "b: expired at ")

	// A renewal puts a right; a permanent failure makes b not ready while
	// its certificate is still valid, until a run succeeds.
	clk.t = start.Add(time.Hour)
	rd.Finished(Result{Name: "a", Outcome: Renewed, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	perm := Result{Name: "b", Outcome: Failed, Err: fmt.Errorf("b: %w", backoff.Permanent(errors.New("unauthorized"))), NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)}
	rd.Finished(perm)
	check("permanent failure", "b: cannot be renewed: b: unauthorized")
	rd.Finished(Result{Name: "b", Outcome: BackingOff, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	check("still backing off", "b: cannot be renewed")
	local := Result{Name: "b", Outcome: Failed, Err: &LocalError{What: "webroot /nope", Err: errors.New("no such directory")}}
	rd.Finished(local) // carries no state: the validity stays known
	check("local failure", "b: cannot be renewed: webroot /nope")
	rd.Finished(Result{Name: "b", Outcome: NotDue, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	check("b fine again")
	// A stuck lock holder: nothing renews b, said as a warning (b's
	// certificate is still valid; the alert levels take over in time).
	stuck := Result{Name: "b", Outcome: LockStuck, Err: errors.New("b: lineage lock held longer than any run can take: pid 4242")}
	rd.Finished(stuck)
	if rep := check("lock stuck"); len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0].Problem, "pid 4242") {
		t.Errorf("warnings %+v", rep.Warnings)
	}
	rd.Finished(Result{Name: "b", Outcome: NotDue, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	check("b fine again after the stuck lock")

	// Failing hooks are a warning until they succeed.
	// Their output (quoted in HookErr) stays out of the answer: a count
	// and a pointer to the log instead.
	rd.Finished(Result{Name: "a", Outcome: Renewed, HookErr: errors.New("nginx: reload failed; output: Cookie: sessionid=c00kie"), HooksPending: 2, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	if rep := check("hook failing"); len(rep.Warnings) != 1 || strings.Contains(rep.Warnings[0].Problem, "c00kie") ||
		!strings.Contains(rep.Warnings[0].Problem, "2 runs pending") || !strings.Contains(rep.Warnings[0].Problem, "log") {
		t.Errorf("warnings %+v", rep.Warnings)
	}
	rd.Finished(Result{Name: "a", Outcome: NotDue, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)})
	if rep := check("hooks done"); len(rep.Warnings) != 0 {
		t.Errorf("warnings %+v", rep.Warnings)
	}

	// A reload that drops b forgets it; a result for it is ignored.
	rd.configure(certs[:1], expiry.LevelWarning, nil, false)
	rd.Finished(perm)
	if rep := check("b removed"); rep.Certificates != 1 {
		t.Errorf("certificates %d", rep.Certificates)
	}

	// Over HTTP: 200 or 503, JSON either way.
	rd.configure(certs, expiry.LevelWarning, nil, false)
	rd.Finished(perm)
	rec := httptest.NewRecorder()
	rd.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var rep readyReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rec.Code != http.StatusServiceUnavailable || rep.Ready || rep.Failing[0].Name != "b" {
		t.Errorf("/readyz: %d %s (%v)", rec.Code, rec.Body, err)
	}
}

// TestReadinessAfterRestartKeepsAPermanentFailure: primed from disk after a
// restart, a certificate whose last renewal the CA refused is not ready.
func TestReadinessAfterRestartKeepsAPermanentFailure(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	rd := &Readiness{Now: func() time.Time { return start }}
	rd.configure([]Certificate{{Name: "a"}, {Name: "b"}}, expiry.LevelWarning, []Status{
		{Name: "a", Installed: true, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour),
			LastOutcome: Failed, LastError: "a: unauthorized", LastErrorPermanent: true},
		{Name: "b", Installed: true, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour),
			LastOutcome: Failed, LastError: "b: connection reset"},
	}, false)
	rep := rd.report()
	if rep.Ready || len(rep.Failing) != 1 || rep.Failing[0].Name != "a" {
		t.Fatalf("failing %+v, want a only", rep.Failing)
	}
	if len(rep.Warnings) != 1 || rep.Warnings[0].Name != "b" {
		t.Fatalf("warnings %+v, want b only", rep.Warnings)
	}
}

// /readyz says whether the fleet answered: unknown before any run, false
// (a warning, not a failure) after a deferred run, true again after a run
// that reached it.
func TestReadinessFleetReachable(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	rd := &Readiness{Now: func() time.Time { return start }}
	valid := Status{Name: "a", Installed: true, NotBefore: start, NotAfter: start.Add(90 * 24 * time.Hour)}
	rd.configure([]Certificate{{Name: "a"}}, expiry.LevelWarning, []Status{valid}, true)
	if rep := rd.report(); rep.Fleet == nil || rep.Fleet.Reachable != nil || !rep.Ready {
		t.Fatalf("before any run: %+v", rep)
	}
	rd.Finished(Result{Name: "a", Outcome: Deferred, Err: errors.New("renewal deferred: fleet unavailable: fleet: etcd unavailable")})
	rep := rd.report()
	if rep.Fleet.Reachable == nil || *rep.Fleet.Reachable || !strings.Contains(rep.Fleet.Error, "etcd unavailable") {
		t.Errorf("after a deferred run: %+v", rep.Fleet)
	}
	if !rep.Ready || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0].Problem, "deferred") {
		t.Errorf("a deferred run must warn, not fail: %+v", rep)
	}
	rd.Finished(Result{Name: "a", Outcome: NotDue, NotBefore: valid.NotBefore, NotAfter: valid.NotAfter})
	if rep := rd.report(); rep.Fleet.Reachable == nil || !*rep.Fleet.Reachable || len(rep.Warnings) != 0 {
		t.Errorf("after a run that reached the fleet: %+v", rep)
	}
	// Single-node mode: no fleet in the report.
	rd.configure([]Certificate{{Name: "a"}}, expiry.LevelWarning, nil, false)
	if rep := rd.report(); rep.Fleet != nil {
		t.Errorf("single node: %+v", rep.Fleet)
	}
}

// TestReadinessZeroValueAndConfigure: the zero value answers ready for no
// certificate; Configure with a Renewer reads the lineages from disk, and
// a zero level means warning.
func TestReadinessZeroValueAndConfigure(t *testing.T) {
	var rd Readiness
	rec := httptest.NewRecorder()
	rd.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"certificates": 0`) {
		t.Errorf("zero value: %d %s", rec.Code, rec.Body)
	}
	r := &Renewer{Root: t.TempDir()}
	rd.Configure(r, 0, Certificate{Name: "a", Domains: []string{"a.example"}})
	rec = httptest.NewRecorder()
	rd.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var rep readyReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rec.Code != http.StatusServiceUnavailable ||
		rep.ReadyLevel != "warning" || len(rep.Failing) != 1 || rep.Failing[0].Problem != "no certificate installed yet" || rep.Fleet != nil {
		t.Errorf("configured: %d %s (%v)", rec.Code, rec.Body, err)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("the report may be cached")
	}
}
