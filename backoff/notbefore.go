package backoff

import "time"

// Cross-run backoff parameters of NotBefore.
const (
	// crossRunBase is the first delay after a failed run, for certificates
	// whose lifetime is 100 hours or more; shorter lifetimes use 1/100 of
	// the lifetime (at least crossRunMinBase).
	crossRunBase = time.Hour
	// crossRunMinBase is the smallest base delay.
	crossRunMinBase = time.Second
	// crossRunCap is the longest delay between runs.
	crossRunCap = 24 * time.Hour
)

// NotBefore returns the earliest time the next run may try again after
// failures consecutive failed runs, the last at lastFailure, for a
// certificate valid from certNotBefore to certNotAfter. It spaces out the
// attempts of a timer that fires several times a day, so that a CA that keeps
// failing is not hammered, without ever giving up on a certificate that is
// running out. It is a pure function; the caller persists failures and
// lastFailure (and resets failures after a success).
//
// failures ≤ 0 means no gate: NotBefore returns the zero time.
//
// The delay starts at a base of crossRunBase (1 h), or lifetime/100 for
// lifetimes under 100 hours (at least crossRunMinBase), and doubles with
// each failure up to crossRunCap (24 h):
//
//	delay = min(base * 2^(failures-1), 24 h)
//
// It is never allowed to push the next attempt past the point where the
// certificate enters the last sixth of its lifetime (certNotAfter -
// lifetime/6): the result is clamped there. Once that point has passed,
// attempts go on every base interval, lastFailure + base, even after expiry:
// a certificate that is running out must keep trying. Without a known
// certificate (zero or inverted validity, as before the first issuance)
// only the base, the doubling and the cap apply.
//
// Worked examples, lastFailure counted from issuance:
//
//	certificate   failures  lastFailure  next attempt after lastFailure
//	90 days       1         day 60       1 h
//	90 days       3         day 60       4 h
//	90 days       5         day 60       16 h
//	90 days       8         day 60       24 h (cap)
//	90 days       8         day 74.5     12 h (clamped to day 75, the last sixth)
//	90 days       9         day 80       1 h  (inside the last sixth: base)
//	6 days        1         day 4        1 h
//	6 days        5         day 4        16 h
//	6 days        6         day 4        24 h (= day 5, the last sixth)
//	6 days        7         day 5.5      1 h  (base)
//	10 minutes    1         minute 7     6 s  (base = lifetime/100)
//	10 minutes    4         minute 7     48 s
//	10 minutes    6         minute 8     20 s (clamped to minute 8:20)
//	none          3         -            4 h
func NotBefore(failures int, lastFailure, certNotBefore, certNotAfter time.Time) time.Time {
	if failures <= 0 {
		return time.Time{}
	}
	base := crossRunBase
	lifetime := certNotAfter.Sub(certNotBefore)
	known := !certNotAfter.IsZero() && lifetime > 0
	if known && lifetime/100 < base {
		base = max(lifetime/100, crossRunMinBase)
	}
	delay := base
	for i := 1; i < failures && delay < crossRunCap; i++ { // ≤ 17 doublings from 1 s
		delay *= 2
	}
	delay = min(delay, crossRunCap)
	next := lastFailure.Add(delay)
	if known {
		if lastSixth := certNotAfter.Add(-lifetime / 6); next.After(lastSixth) {
			next = lastSixth
		}
	}
	// Always leave at least the base interval, clamped or not.
	if floor := lastFailure.Add(base); next.Before(floor) {
		next = floor
	}
	return next
}

// RetryAfterLimit returns the latest time a server's Retry-After may push the
// next run to, for a failure at now of a certificate valid from
// certNotBefore to certNotAfter. It is the bound of NotBefore: at most
// crossRunCap (24 h) after now, and never past the start of the
// certificate's last sixth; once inside the last sixth, at most a sixth of
// the remaining lifetime (but at least NotBefore's base interval), so that
// several attempts are still made before expiry. Without a known
// certificate only the cap applies. One 429 asking for ten years must not
// set the next attempt past the certificate's expiry: a caller persists
// min(now + Retry-After, RetryAfterLimit(...)).
func RetryAfterLimit(now, certNotBefore, certNotAfter time.Time) time.Time {
	limit := now.Add(crossRunCap)
	lifetime := certNotAfter.Sub(certNotBefore)
	if certNotAfter.IsZero() || lifetime <= 0 {
		return limit
	}
	if lastSixth := certNotAfter.Add(-lifetime / 6); lastSixth.After(now) {
		return minTime(limit, lastSixth)
	}
	base := crossRunBase
	if lifetime/100 < base {
		base = max(lifetime/100, crossRunMinBase)
	}
	return minTime(limit, now.Add(max(certNotAfter.Sub(now)/6, base)))
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
