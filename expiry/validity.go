package expiry

import "time"

// Validity is a certificate's validity period: all that the renewal decision
// and the alert level need. It is what a caller keeps in its state file so
// that a run that finds nothing to do need not read and parse the
// certificate.
//
// Both bounds are inclusive, as in RFC 5280 and crypto/x509: a certificate is
// valid at NotBefore and at NotAfter. A Validity is a plain value, safe to
// copy and to share between goroutines.
type Validity struct {
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// Lifetime returns NotAfter - NotBefore, or 0 when the period is empty or
// inverted. It saturates at the largest time.Duration (about 292 years).
func (v Validity) Lifetime() time.Duration {
	if !v.valid() {
		return 0
	}
	return v.NotAfter.Sub(v.NotBefore)
}

// Remaining returns how long the certificate stays valid after now:
// NotAfter - now, negative once it has expired.
func (v Validity) Remaining(now time.Time) time.Duration {
	return v.NotAfter.Sub(now)
}

// Expired reports whether now is after NotAfter (the crypto/x509 rule: a
// certificate is still valid at the NotAfter instant itself).
func (v Validity) Expired(now time.Time) bool { return now.After(v.NotAfter) }

// NotYetValid reports whether now is before NotBefore.
func (v Validity) NotYetValid(now time.Time) bool { return now.Before(v.NotBefore) }

// valid reports whether the period is usable: NotAfter set and after
// NotBefore.
func (v Validity) valid() bool {
	return !v.NotAfter.IsZero() && v.NotAfter.After(v.NotBefore)
}

// scaled returns d*f clamped to [0, d], without float-to-int overflow. f is
// expected in [0, 1]; NaN gives 0.
func scaled(d time.Duration, f float64) time.Duration {
	if !(f > 0) || d <= 0 { // also catches NaN
		return 0
	}
	if f >= 1 {
		return d
	}
	x := float64(d) * f
	if x >= float64(d) { // float64(d) may round d up; never exceed d
		return d
	}
	if r := time.Duration(x); r < d {
		return r
	}
	return d
}
