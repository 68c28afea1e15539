package expiry

import (
	"strconv"
	"time"
)

// source says which rule produced a Decision; tests read it to check the
// rule that fired, the log shows Decision.Reason.
type source int

// The sources of a Decision. The zero source is not produced by DecideAt.
const (
	// sourcePolicy: the renewal Policy set RenewAt (no usable ARI window).
	sourcePolicy source = iota + 1
	// sourceARI: the CA's ARI window set RenewAt.
	sourceARI
	// sourceExpired: the certificate has expired; renew now whatever the
	// policy or window say.
	sourceExpired
	// sourceNotYetValid: NotBefore is after now. This host's clock is most
	// likely behind (CAs backdate NotBefore, typically by an hour), and a new
	// certificate would look just as "not yet valid", so it is not renewed.
	sourceNotYetValid
	// sourceInvalid: the validity period is missing or empty (NotAfter zero,
	// or not after NotBefore): there is no usable certificate; renew now.
	sourceInvalid
)

var sourceNames = [...]string{"unknown", "policy", "ari", "expired", "not-yet-valid", "invalid"}

// String returns a short lower-case name, suitable as a metric label:
// "policy", "ari", "expired", "not-yet-valid", "invalid".
func (s source) String() string {
	if s < 0 || int(s) >= len(sourceNames) {
		return "source(" + strconv.Itoa(int(s)) + ")"
	}
	return sourceNames[s]
}

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
	// source says which rule decided.
	source source
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
//     due now.
//  2. Expired (now after NotAfter): due, RenewAt = NotAfter.
//  3. A window that passes Window.Check, and its instant at is not after
//     now: due (RFC 9773 §4.2: renew at once when the chosen instant is in
//     the past). A window that fails Check is ignored and the reason
//     recorded in WindowRejected.
//  4. Not yet valid (now before NotBefore): not due, RenewAt as rule 5 or 6
//     would set it. Renewing would not help (the new certificate would look
//     just as early to this clock) and could repeat on every run; the
//     caller should warn about clock skew.
//  5. A usable window: not due, RenewAt = at. The window overrides the
//     policy, earlier or later.
//  6. The policy: RenewAt = p.RenewAt(v), due when that is not after now.
//
// A caller that runs on a schedule rather than sleeping until RenewAt should
// also renew when it passed a window that was not rejected (WindowRejected
// empty) and RenewAt falls before its next scheduled run (RFC 9773 §4.2,
// step 5), so as not to overshoot a short window.
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
		d.Due, d.RenewAt, d.source, d.Reason = true, now, sourceInvalid, reasonBadValidity
		if v.NotAfter.IsZero() {
			d.Reason = reasonNoValidity
		}
		return d
	}
	// (2) expired beats everything.
	if v.Expired(now) {
		d.Due, d.RenewAt, d.source, d.Reason = true, v.NotAfter, sourceExpired, reasonExpired
		return d
	}
	// (3) the CA's window, when its instant has come.
	if w != nil {
		d.RenewAt = instant(w)
		if !d.RenewAt.After(now) {
			d.Due, d.source, d.Reason = true, sourceARI, reasonARIOpened
			if w.ExplanationURL != "" {
				d.Reason += " (explanation: " + w.ExplanationURL + ")"
			}
			return d
		}
		d.source, d.Reason = sourceARI, reasonARIWaiting // (5), unless (4)
	} else {
		d.RenewAt, d.source, d.Reason = p.RenewAt(v), sourcePolicy, policyReason(p, v) // (6), unless (4)
		d.Due = !d.RenewAt.After(now)
	}
	// (4) a certificate from the future: suspect the clock, do not renew.
	if v.NotYetValid(now) {
		d.Due, d.source, d.Reason = false, sourceNotYetValid, reasonNotYetValid
	}
	return d
}
