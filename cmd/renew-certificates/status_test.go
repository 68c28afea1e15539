package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/renew"
)

func statusFixtures(now time.Time) []renew.Status {
	return []renew.Status{
		{
			Name: "www", Domains: []string{"example.org", "www.example.org"}, Installed: true, Generation: 3,
			NotBefore: now.Add(-30 * 24 * time.Hour), NotAfter: now.Add(60 * 24 * time.Hour),
			RenewAt: now.Add(30 * 24 * time.Hour), Reason: "one third of lifetime remaining",
			LastOutcome: renew.NotDue, LastAttempt: now.Add(-3 * time.Hour),
		},
		{
			Name: "api", Domains: []string{"a.example.org", "b.example.org", "c.example.org", "d.example.org"}, Installed: true, Generation: 7,
			NotAfter: now.Add(5 * 24 * time.Hour), Due: true, RenewAt: now.Add(-time.Hour), Reason: "ARI window opened",
			LastOutcome: renew.Failed, LastAttempt: now.Add(-90 * time.Minute), LastError: "new order: rateLimited:\n too many",
			Failures: 2, RetryNotBefore: now.Add(2 * time.Hour),
			HooksPending:  []hooks.Entry{{Generation: 7, Pending: []hooks.PendingHook{{Name: "systemctl reload nginx", Attempts: 1, LastError: "exit status 1"}}}},
			OrderInFlight: "https://ca.example/order/1",
		},
		{Name: "new", Domains: []string{"new.example.org"}, Due: true, RenewAt: now, Reason: "no certificate installed"},
		{Name: "bad", Domains: []string{"bad.example.org"}, Due: true, RenewAt: now, Reason: "no usable certificate installed", Err: errors.New("state.json: corrupt")},
	}
}

func TestWriteStatusTable(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	writeStatusTable(&b, statusFixtures(now), now)
	want := `NAME  DOMAINS                                       NOT AFTER                   RENEW AT                    WHY                              LAST OUTCOME    FAILURES  NOT BEFORE                 HOOKS PENDING
www   example.org,www.example.org                   2026-04-30 12:00Z (in 60d)  2026-03-31 12:00Z (in 30d)  one third of lifetime remaining  not_due 3h ago  0         -                          0
api   a.example.org,b.example.org,c.example.org,+1  2026-03-06 12:00Z (in 5d)   now                         ARI window opened                failed 1h ago   2         2026-03-01 14:00Z (in 2h)  1
new   new.example.org                               -                           now                         no certificate installed         -               0         -                          0
bad   bad.example.org                               -                           now                         error (see below)                -               0         -                          0
api: last error: new order: rateLimited: too many
api: deploy hook "systemctl reload nginx" pending for generation 7 (1 failed attempts; last: exit status 1)
api: order https://ca.example/order/1 was placed by a run that did not finish; the next run finishes it and installs its certificate
api: needs attention: its last renewal failed
api: needs attention: backing off after 2 failures until 2026-03-01 14:00Z
api: needs attention: 1 deploy hook runs pending
bad: error: state.json: corrupt
bad: needs attention: its status cannot be read in full, or what servers read is not what is installed (see the error)
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	// Columns line up.
	lines := strings.Split(b.String(), "\n")
	col := strings.Index(lines[0], "NOT AFTER")
	for _, l := range lines[1:5] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("column NOT AFTER not aligned in %q", l)
		}
	}
}

func TestWriteDryRun(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	fixtures := statusFixtures(now)
	changed := fixtures[1]
	changed.Name, changed.ConfigChanged = "fixed", true
	changed.OrderInFlight, changed.HooksPending = "", nil
	fixtures = append(fixtures, changed)
	writeDryRun(&b, fixtures, now, func(args ...string) string { return "renew-certificates " + strings.Join(args, " ") })
	want := `www: not due: would renew at 2026-03-31 12:00Z (in 30d): one third of lifetime remaining
api: due (ARI window opened), but backing off after 2 failures until 2026-03-01 14:00Z (in 2h); last error: new order: rateLimited: too many; to retry now: renew-certificates -force api
api: would first install the certificate of order https://ca.example/order/1, placed by a run that did not finish
api: would replay 1 pending deploy hook runs
new: would renew now: no certificate installed
bad: would renew now: no usable certificate installed
bad: note: state.json: corrupt
fixed: would renew now: ARI window opened (the configuration changed since the 2 failures, so their backoff does not apply)
`
	if got := b.String(); got != want {
		t.Errorf("dry run:\n%s\nwant:\n%s", got, want)
	}
}

func TestRel(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		30 * time.Second: "now", -30 * time.Second: "just now", 5 * time.Minute: "in 5m", -3 * time.Hour: "3h ago",
		47 * time.Hour: "in 47h", 49 * time.Hour: "in 2d", -90 * 24 * time.Hour: "90d ago",
	} {
		if got := rel(now.Add(d), now); got != want {
			t.Errorf("rel(%v) = %q, want %q", d, got, want)
		}
	}
}
