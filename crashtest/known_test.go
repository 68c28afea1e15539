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
	// The six defects this suite found (account temp files left by a
	// killed write, privkey.pem not checked on the no-op path, hooks replayed
	// during recovery not saved at once, a fixed hook dropped as no longer
	// configured, fleet nodes with ACME accounts of their own unable to
	// finish each other's orders, a -serve node that watched the fleet again
	// without reading it first) are fixed, and their checks are ordinary
	// assertions.
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
