package crashtest_test

import (
	"fmt"
	"testing"
)

// knownIssues are defects this suite found in other packages and reported
// to their owners. A check that finds one logs "KNOWN ISSUE" instead of
// failing; remove the entry together with the fix, and the check becomes
// an ordinary assertion again.
var knownIssues = map[string]string{
	"fleet-own-accounts":   "reported to the lead, issue 13: a node cannot fetch an order another node's ACME account placed (403 unauthorized), so a fleet whose nodes keep the CLI's per-root default account wastes the certificate of a holder killed after finalize; nodes must share one account until the fleet shares it or refuses mixed accounts",
	"fleet-rewatch-missed": "reported to the lead, issue 13 (renew, fleet path of Serve): a -serve node whose fleet watch ended (no quorum) watches again 10 s later without reading the fleet first (fleet.Client.Watch's doc: read again, then watch anew), so a generation published meanwhile is installed only at the node's next renewal timer",
	// The four defects this suite found (account temp files left by a
	// killed write, privkey.pem not checked on the no-op path, hooks replayed
	// during recovery not saved at once, a fixed hook dropped as no longer
	// configured) are fixed, and their checks are ordinary assertions.
}

// knownIssue reports a problem: as a logged KNOWN ISSUE when id is listed
// in knownIssues, as a test error otherwise. It returns the message.
func knownIssue(t testing.TB, id, format string, args ...any) string {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if why, ok := knownIssues[id]; ok {
		t.Logf("KNOWN ISSUE %s (%s): %s", id, why, msg)
		return "KNOWN ISSUE " + id
	}
	t.Error(msg)
	return msg
}
