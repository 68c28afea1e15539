package expiry

import (
	"strconv"
	"time"
)

// Source says which rule produced a Decision.
type Source int

// The sources of a Decision. The zero Source is not produced by DecideAt.
const (
	// SourcePolicy: the renewal Policy set RenewAt (no usable ARI window).
	SourcePolicy Source = iota + 1
	// SourceARI: the CA's ARI window set RenewAt.
	SourceARI
	// SourceExpired: the certificate has expired; renew now whatever the
	// policy or window say.
	SourceExpired
	// SourceNotYetValid: NotBefore is after now. This host's clock is most
	// likely behind (CAs backdate NotBefore, typically by an hour), and a new
	// certificate would look just as "not yet valid", so it is not renewed.
	SourceNotYetValid
	// SourceInvalid: the validity period is missing or empty (NotAfter zero,
	// or not after NotBefore): there is no usable certificate; renew now.
	SourceInvalid
)

var sourceNames = [...]string{"unknown", "policy", "ari", "expired", "not-yet-valid", "invalid"}

// String returns a short lower-case name, suitable as a metric label:
// "policy", "ari", "expired", "not-yet-valid", "invalid".
func (s Source) String() string {
	if s < 0 || int(s) >= len(sourceNames) {
		return "Source(" + strconv.Itoa(int(s)) + ")"
	}
	return sourceNames[s]
}

// MarshalText implements encoding.TextMarshaler with String.
func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Decision is the outcome of DecideAt, a plain value safe to copy and share.
type Decision struct {
	// Due reports whether the certificate should be renewed now.
	Due bool
	// RenewAt is when the certificate is (or was) due. When Due is true it is
	// not after now; when Due is false it is the instant to check again.
	RenewAt time.Time
	// Reason is a short human explanation: the policy ("one third of
	// lifetime remaining", "30 days before expiry"), "ARI window opened",
	// "ARI suggested window", "expired", "not yet valid: clock skew?", ...
	Reason string
	// Source says which rule decided.
	Source Source
	// WindowRejected is empty unless an ARI window was given and refused
	// (see Window.Check); it then says why, for the caller to log.
	WindowRejected string
}

// Reasons used by DecideAt besides the policies' own descriptions.
const (
	reasonExpired     = "expired"
	reasonNotYetValid = "not yet valid: clock skew?"
	reasonARIOpened   = "ARI window opened"
	reasonARIWaiting  = "ARI suggested window"
	reasonNoValidity  = "no validity period known"
	reasonBadValidity = "invalid validity period: NotAfter is not after NotBefore"
)

// DecideAt decides whether a certificate valid over v should be renewed at
// now. It is a pure function: no clock, no randomness, no I/O.
//
// p is the renewal policy (nil means DefaultPolicy()). w is the CA's ARI
// window, or nil when the CA offers none or it could not be fetched. at is
// the renewal instant picked in w with Window.Pick (or Window.At with a
// uniform random position drawn once), persisted by the caller so that the
// chosen instant is stable across runs. An instant outside [w.Start, w.End)
// — the zero time, or a pick from an earlier window that the CA has since
// moved — is clamped into the window; a caller should pick again when the
// window changes, so that the instant is uniform in the new window. at is
// ignored when w is nil or rejected.
//
// The rules, first match wins:
//
//  1. No usable validity period (zero, or NotAfter not after NotBefore):
//     due now, SourceInvalid.
//  2. Expired (now after NotAfter): due, SourceExpired, RenewAt = NotAfter.
//  3. A window that passes Window.Check, and its instant at is not after
//     now: due, SourceARI (RFC 9773 §4.2: renew at once when the chosen
//     instant is in the past). A window that fails Check is ignored and the
//     reason recorded in WindowRejected.
//  4. Not yet valid (now before NotBefore): not due, SourceNotYetValid,
//     RenewAt as rule 5 or 6 would set it. Renewing would not help (the new
//     certificate would look just as early to this clock) and could repeat on
//     every run; the caller should warn about clock skew.
//  5. A usable window: not due, SourceARI, RenewAt = at. The window
//     overrides the policy, earlier or later.
//  6. The policy: RenewAt = p.RenewAt(v), due when that is not after now,
//     SourcePolicy.
//
// A caller that runs on a schedule rather than sleeping until RenewAt should
// also renew when the Source is SourceARI and RenewAt falls before its next
// scheduled run (RFC 9773 §4.2, step 5), so as not to overshoot a short
// window.
func DecideAt(now time.Time, v Validity, p Policy, w *Window, at time.Time) Decision {
	return decide(now, v, p, w, func(w *Window) time.Time { return w.clamp(at) })
}

func decide(now time.Time, v Validity, p Policy, w *Window, instant func(*Window) time.Time) Decision {
	if p == nil {
		p = DefaultPolicy()
	}
	var d Decision
	if w != nil {
		if err := w.Check(v); err != nil {
			d.WindowRejected = err.Error()
			w = nil
		}
	}

	// (1) nothing to reason about: renew.
	if !v.valid() {
		d.Due, d.RenewAt, d.Source, d.Reason = true, now, SourceInvalid, reasonBadValidity
		if v.NotAfter.IsZero() {
			d.Reason = reasonNoValidity
		}
		return d
	}
	// (2) expired beats everything.
	if v.Expired(now) {
		d.Due, d.RenewAt, d.Source, d.Reason = true, v.NotAfter, SourceExpired, reasonExpired
		return d
	}
	// (3) the CA's window, when its instant has come.
	if w != nil {
		d.RenewAt = instant(w)
		if !d.RenewAt.After(now) {
			d.Due, d.Source, d.Reason = true, SourceARI, reasonARIOpened
			if w.ExplanationURL != "" {
				d.Reason += " (explanation: " + w.ExplanationURL + ")"
			}
			return d
		}
		d.Source, d.Reason = SourceARI, reasonARIWaiting // (5), unless (4)
	} else {
		d.RenewAt, d.Source, d.Reason = p.RenewAt(v), SourcePolicy, policyReason(p, v) // (6), unless (4)
		d.Due = !d.RenewAt.After(now)
	}
	// (4) a certificate from the future: suspect the clock, do not renew.
	if v.NotYetValid(now) {
		d.Due, d.Source, d.Reason = false, SourceNotYetValid, reasonNotYetValid
	}
	return d
}
