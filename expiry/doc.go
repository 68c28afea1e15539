// Package expiry reads certificates from disk and decides when to renew
// them.
//
// # Deciding
//
// DecideAt is a pure function of the time, the certificate's Validity, a
// renewal Policy and, when the CA offers one, an ACME Renewal Information
// (ARI, RFC 9773) Window. It returns a Decision: due or not, when, and a human
// reason for the log.
//
// Policies: a fraction f renews when f of the lifetime remains, and is the
// default with f = 1/3 (DefaultPolicy), right for 90-day, 45-day and 6-day
// certificates alike; a duration d renews d before expiry (falling back to
// the default for lifetimes not longer than d). ParsePolicy reads either
// from a configuration string ("1/3", "30d").
//
// An ARI window, when it passes Window.Check, overrides the policy. Following
// RFC 9773 §4.2, the renewal instant is a uniformly random point of the
// window, and renewal is due once that point is past. The randomness is the
// caller's: DecideAt takes the instant picked in the window (Window.Pick, or
// Window.At of a position u in [0, 1)), which the caller draws once per
// certificate and persists.
//
// AlertLevel grades the time left (30/14/7/2 days, proportionally less for
// lifetimes under 90 days) for alerting and metrics.
//
// # Reading
//
// ParseChain reads the leaf and its chain from a PEM file's content,
// skipping non-certificate blocks and refusing empty, truncated, damaged or
// oversized input with errors that name the file and the problem.
//
// # Crash safety and preconditions
//
// The package keeps no state and writes nothing: a crash at any point loses
// nothing of its own. What must survive a crash is the caller's: the Validity
// of the installed certificate, and the picked window instant, which must be
// persisted before it is relied on so that a restarted process keeps the same
// renewal instant instead of drawing a new one (repeated draws would skew the
// choice towards the start of the window).
//
// Decisions are only as good as the clock passed in: a clock that is behind
// shows freshly issued certificates as not yet valid (DecideAt then declines to
// renew and says "clock skew?"); a clock that is ahead makes certificates
// look older than they are.
//
// Everything in the package is safe for concurrent use.
package expiry
