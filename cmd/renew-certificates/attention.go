package main

import (
	"fmt"
	"time"

	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/renew"
)

// attention lists why the certificate s needs someone's attention, or
// nothing when it does not: what makes -status exit 1, like a Nagios check.
// The cases:
//
//   - its status cannot be read in full, or a stable link holds a foreign
//     file (s.Err);
//   - its last run failed (a first issuance included) or found its lock
//     stuck;
//   - it is backing off after failures (under the same configuration);
//   - deploy hooks are pending (failing, or not run yet after a kill);
//   - it expires within 14 days of a 90-day lifetime (expiry.LevelWarning
//     or above): renewal should have succeeded long before.
//
// A certificate not installed yet that no run has tried, one due now, and
// one whose lock another run holds right now need no attention.
func attention(s renew.Status, now time.Time) []string {
	var out []string
	if s.Err != nil {
		out = append(out, "its status cannot be read in full, or what servers read is not what is installed (see the error)")
	}
	switch s.LastOutcome {
	case renew.Failed:
		if s.Installed {
			out = append(out, "its last renewal failed")
		} else {
			out = append(out, "its first issuance failed: no certificate is installed")
		}
	case renew.LockStuck:
		out = append(out, "its lock has been held for longer than any run takes (a stopped or frozen process)")
	}
	if now.Before(s.RetryNotBefore) && !s.ConfigChanged {
		out = append(out, fmt.Sprintf("backing off after %d failures until %s", s.Failures, s.RetryNotBefore.UTC().Format(timeFormat)))
	}
	if n := pendingCount(s); n > 0 {
		out = append(out, fmt.Sprintf("%d deploy hook runs pending", n))
	}
	if s.Installed && s.Alert >= expiry.LevelWarning {
		out = append(out, fmt.Sprintf("alert level %s: it expires %s", s.Alert, rel(s.NotAfter, now)))
	}
	return out
}
