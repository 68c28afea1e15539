package expiry

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Policy computes when a certificate should be renewed from its validity
// period alone.
//
// RenewAt must be a pure function of v: the same answer for the same input,
// no clock, no randomness, no I/O. For a valid period (NotAfter after
// NotBefore) it should return an instant in [NotBefore, NotAfter]. String
// returns a short human description used as the reason in a Decision, such as
// "one third of lifetime remaining". Implementations must be safe for
// concurrent use; the policies of this package are immutable values.
//
// The policies returned by DefaultPolicy and ParsePolicy
// also implement encoding.TextMarshaler, producing a string that ParsePolicy
// reads back to an equal policy.
type Policy interface {
	RenewAt(v Validity) time.Time
	String() string
}

// errInvalidPolicy is wrapped by the errors of ParsePolicy.
var errInvalidPolicy = errors.New("invalid renewal policy")

// defaultFraction is the fraction of the lifetime that DefaultPolicy leaves
// when it renews: one third, so a 90-day certificate renews with 30 days
// left, a 45-day one with 15 and a 6-day one with 2.
const defaultFraction = 1.0 / 3

// DefaultPolicy renews when one third of the
// lifetime remains. It suits 90-day, 45-day and 6-day certificates alike,
// where a fixed "30 days before expiry" would renew a 6-day certificate on
// every run.
func DefaultPolicy() Policy { return fraction{f: defaultFraction} }

// fractionPolicy returns a policy that renews when f of the certificate's lifetime
// remains: at NotAfter - f*(NotAfter-NotBefore). f must lie in the open
// interval (0, 1); anything else (including NaN) is an error wrapping
// errInvalidPolicy.
func fractionPolicy(f float64) (Policy, error) {
	if !(f > 0 && f < 1) { // also rejects NaN
		return nil, fmt.Errorf("expiry: fraction %v: %w: must be between 0 and 1, exclusive", f, errInvalidPolicy)
	}
	return fraction{f: f}, nil
}

// beforePolicy returns a policy that renews d before expiry: at NotAfter - d, the
// classic "30 days before expiry". d must be positive; otherwise the error
// wraps errInvalidPolicy.
//
// A threshold that is not shorter than the certificate's whole lifetime
// would make the certificate due the moment it is issued, so that every run
// orders a new one (30 days against a 6-day certificate). For such a
// certificate the policy falls back to DefaultPolicy, and a Decision's reason
// says so.
func beforePolicy(d time.Duration) (Policy, error) {
	if d <= 0 {
		return nil, fmt.Errorf("expiry: before %v: %w: must be positive", d, errInvalidPolicy)
	}
	return before{d: d}, nil
}

// ParsePolicy reads a policy from a configuration string. Accepted forms,
// with surrounding space and letter case ignored:
//
//	"default"                 DefaultPolicy()
//	"1/3", "0.25", "25%"      a fraction: a ratio, a decimal or a percentage in (0, 1)
//	"fraction:1/3"            the same, explicitly
//	"30d", "1.5d", "720h"     a threshold before expiry: days with a "d" suffix, or a Go duration
//	"before:30d"              the same, explicitly
//
// A bare number of 1 or more ("30") is refused as ambiguous. Errors quote
// the input and say why it is refused.
func ParsePolicy(s string) (Policy, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	kind := ""
	if k, rest, ok := strings.Cut(in, ":"); ok {
		kind, in = strings.TrimSpace(k), strings.TrimSpace(rest)
	}
	fail := func(why string) (Policy, error) {
		return nil, fmt.Errorf("expiry: policy %q: %w: %s", s, errInvalidPolicy, why)
	}
	switch kind {
	case "":
		switch {
		case in == "":
			return fail("empty")
		case in == "default":
			return DefaultPolicy(), nil
		case strings.HasSuffix(in, "d") || strings.IndexFunc(in, isUnitLetter) >= 0:
			return parseBefore(in, fail)
		}
		return parseFraction(in, fail)
	case "fraction":
		return parseFraction(in, fail)
	case "before":
		return parseBefore(in, fail)
	}
	return fail(`unknown kind ` + strconv.Quote(kind) + `: want "fraction" or "before"`)
}

// isUnitLetter reports whether r can only belong to a duration (a unit).
func isUnitLetter(r rune) bool {
	return r == 'h' || r == 'm' || r == 's' || r == 'u' || r == 'n' || r == 'µ' || r == 'μ'
}

func parseFraction(in string, fail func(string) (Policy, error)) (Policy, error) {
	var f float64
	switch {
	case strings.HasSuffix(in, "%"):
		x, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(in, "%")), 64)
		if err != nil {
			return fail("not a percentage")
		}
		f = x / 100
	case strings.Contains(in, "/"):
		ns, ds, _ := strings.Cut(in, "/")
		n, err1 := strconv.ParseFloat(strings.TrimSpace(ns), 64)
		d, err2 := strconv.ParseFloat(strings.TrimSpace(ds), 64)
		if err1 != nil || err2 != nil || !(d > 0) {
			return fail("not a ratio like 1/3")
		}
		f = n / d
	default:
		x, err := strconv.ParseFloat(in, 64)
		if err != nil {
			return fail("neither a fraction nor a duration")
		}
		if x >= 1 {
			return fail("ambiguous: a fraction must be below 1; for a duration add a unit, e.g. " + in + "d")
		}
		f = x
	}
	if !(f > 0 && f < 1) {
		return fail("fraction must be between 0 and 1, exclusive")
	}
	return fraction{f: f}, nil
}

func parseBefore(in string, fail func(string) (Policy, error)) (Policy, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(in, "d"); ok {
		x, err := strconv.ParseFloat(strings.TrimSpace(days), 64)
		if err != nil || math.IsNaN(x) {
			return fail("not a number of days like 30d")
		}
		ns := x * float64(24*time.Hour)
		if ns >= math.MaxInt64 || ns <= math.MinInt64 {
			return fail("out of range")
		}
		d = time.Duration(ns)
	} else {
		x, err := time.ParseDuration(in)
		if err != nil {
			return fail("not a duration like 30d or 720h")
		}
		d = x
	}
	if d <= 0 {
		return fail("duration must be positive")
	}
	return before{d: d}, nil
}

// fraction renews when f of the lifetime remains.
type fraction struct{ f float64 }

func (p fraction) RenewAt(v Validity) time.Time {
	return v.NotAfter.Add(-scaled(v.Lifetime(), p.f))
}

func (p fraction) String() string { return fractionWords(p.f) + " of lifetime remaining" }

// MarshalText returns "n/d" for a simple ratio, otherwise "fraction:" and
// the shortest decimal that reads back to the same float64.
func (p fraction) MarshalText() ([]byte, error) {
	if n, d, ok := ratio(p.f, 100, 0); ok {
		return []byte(strconv.Itoa(n) + "/" + strconv.Itoa(d)), nil
	}
	return []byte("fraction:" + strconv.FormatFloat(p.f, 'g', -1, 64)), nil
}

// before renews d before expiry.
type before struct{ d time.Duration }

func (p before) RenewAt(v Validity) time.Time {
	if p.tooLong(v) {
		return DefaultPolicy().RenewAt(v)
	}
	return v.NotAfter.Add(-p.d)
}

func (p before) tooLong(v Validity) bool { return p.d >= v.Lifetime() }

func (p before) String() string { return humanDuration(p.d) + " before expiry" }

// reason explains the fallback of RenewAt when it applies.
func (p before) reason(v Validity) string {
	if p.tooLong(v) && v.valid() {
		return fmt.Sprintf("%s is not shorter than the %s lifetime: %s",
			p.String(), humanDuration(v.Lifetime()), DefaultPolicy().String())
	}
	return p.String()
}

// MarshalText returns "Nd" for whole days, otherwise a Go duration.
func (p before) MarshalText() ([]byte, error) {
	if p.d%(24*time.Hour) == 0 {
		return []byte(strconv.FormatInt(int64(p.d/(24*time.Hour)), 10) + "d"), nil
	}
	return []byte(p.d.String()), nil
}

// explainer is implemented by this package's policies whose reason depends
// on the certificate.
type explainer interface{ reason(v Validity) string }

// policyReason returns the human reason for p's renewal time of v.
func policyReason(p Policy, v Validity) string {
	if e, ok := p.(explainer); ok {
		return e.reason(v)
	}
	return p.String()
}

var fractionNames = map[[2]int]string{
	{1, 2}: "half", {1, 3}: "one third", {2, 3}: "two thirds",
	{1, 4}: "one quarter", {3, 4}: "three quarters", {1, 5}: "one fifth",
	{1, 6}: "one sixth", {1, 10}: "one tenth",
}

func fractionWords(f float64) string {
	if n, d, ok := ratio(f, 10, 1e-9); ok {
		if w, ok := fractionNames[[2]int{n, d}]; ok {
			return w
		}
	}
	return strconv.FormatFloat(f*100, 'g', 3, 64) + "%"
}

// ratio finds the n/d in lowest terms with d ≤ maxDen that is within tol of
// f (tol 0: exactly equal as float64).
func ratio(f float64, maxDen int, tol float64) (n, d int, ok bool) {
	for d = 2; d <= maxDen; d++ {
		n = int(math.Round(f * float64(d)))
		if n <= 0 || n >= d {
			continue
		}
		if q := float64(n) / float64(d); q == f || math.Abs(q-f) <= tol {
			return n, d, true
		}
	}
	return 0, 0, false
}

// humanDuration renders whole days and hours in words, anything else as a Go
// duration.
func humanDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s"
	}
	switch {
	case d > 0 && d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d > 0 && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	}
	return d.String()
}
