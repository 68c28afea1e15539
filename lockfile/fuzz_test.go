package lockfile

import (
	"testing"
	"time"
)

// FuzzParseHolder: the holder line is read from a file any process that
// can open the lock may have written. parseHolder never panics, and what it
// accepts survives a round trip through holderRecord, which is what makes
// the age of a stuck lock trustworthy enough to report.
func FuzzParseHolder(f *testing.F) {
	f.Add(holderRecord(1234, time.Date(2026, 11, 27, 3, 4, 5, 6, time.UTC)))
	f.Add([]byte("pid=1 since=2026-01-02T03:04:05Z\n"))
	f.Add([]byte("pid=-1 since=garbage\n"))
	f.Add([]byte("pid=99999999999999999999 since=9999-12-31T23:59:59.999999999+14:00\n"))
	f.Add([]byte("pid=1 since=2026-01-02T03:04:05Z"))
	f.Add([]byte("since=2026-01-02T03:04:05Z pid=7 pid=8\nmore\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, since := parseHolder(b)
		if pid < 0 {
			t.Fatalf("parseHolder(%q): negative pid %d", b, pid)
		}
		if pid == 0 || since.IsZero() {
			return
		}
		p2, s2 := parseHolder(holderRecord(pid, since))
		if p2 != pid || !s2.Equal(since) {
			t.Fatalf("parseHolder(%q) = %d, %v; its record parses as %d, %v", b, pid, since, p2, s2)
		}
	})
}
