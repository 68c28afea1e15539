package expiry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Window is an ACME Renewal Information (RFC 9773) suggested renewal window:
// the CA asks for renewal at some instant in [Start, End). ExplanationURL,
// when the CA sends one, points to a page explaining the window (typically an
// incident that requires early renewal). A Window is a plain value.
type Window struct {
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	ExplanationURL string    `json:"explanation_url,omitempty"`
}

// errWindowRejected is wrapped by the error of Window.Check.
var errWindowRejected = errors.New("ARI window rejected")

// Check reports whether w can be used for a certificate valid over v. It
// returns an error saying why when w is
// incomplete (a zero Start or End), ends at or before its start (RFC 9773
// requires end > start), or ends after the certificate expires (following it
// could let the certificate lapse). A rejected window is ignored by DecideAt,
// which uses the policy instead.
func (w Window) Check(v Validity) error {
	switch {
	case w.Start.IsZero() || w.End.IsZero():
		return fmt.Errorf("%w: missing start or end", errWindowRejected)
	case !w.End.After(w.Start):
		return fmt.Errorf("%w: ends at %s, not after its start %s",
			errWindowRejected, w.End.UTC().Format(time.RFC3339), w.Start.UTC().Format(time.RFC3339))
	case w.End.After(v.NotAfter):
		return fmt.Errorf("%w: ends at %s, after the certificate expires at %s",
			errWindowRejected, w.End.UTC().Format(time.RFC3339), v.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// At returns the instant at position u of the window: Start + u*(End-Start),
// always in [Start, End) for a window with End after Start (Start itself
// otherwise). u is clamped to [0, 1); NaN counts as 0.
//
// With u drawn uniformly from [0, 1) this is the uniformly random instant of
// RFC 9773 §4.2. Persisting u (rather than the instant) across runs keeps the
// choice stable while the window stays put, and maps it into the new window
// when the CA moves the window, as the RFC asks of a client that re-polls.
func (w Window) At(u float64) time.Time {
	span := w.End.Sub(w.Start) // saturates rather than overflows
	if span <= 0 {
		return w.Start
	}
	t := w.Start.Add(scaled(span, u))
	if !t.Before(w.End) {
		t = w.End.Add(-time.Nanosecond)
	}
	return t
}

// Pick returns a uniformly random instant in [Start, End): w.At(r.Float64()).
// A nil r means math/rand/v2's global source. r is not safe for concurrent
// use; the caller serializes access to a shared one. The caller should
// persist the result (see DecideAt), or the number it used with At (see
// DecideAt), so that later runs keep the same instant.
func (w Window) Pick(r *rand.Rand) time.Time {
	if r == nil {
		return w.At(rand.Float64())
	}
	return w.At(r.Float64())
}

// clamp returns t moved into [Start, End): Start if before, the last
// nanosecond of the window if at or after End.
func (w Window) clamp(t time.Time) time.Time {
	if !w.End.After(w.Start) || t.Before(w.Start) {
		return w.Start
	}
	if !t.Before(w.End) {
		return w.End.Add(-time.Nanosecond)
	}
	return t
}
