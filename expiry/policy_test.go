package expiry

import (
	"errors"
	"math"
	"testing"
	"time"
)

func mustFraction(t *testing.T, f float64) Policy {
	t.Helper()
	p, err := fractionPolicy(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustBefore(t *testing.T, d time.Duration) Policy {
	t.Helper()
	p, err := beforePolicy(d)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFractionRenewAt(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		f        float64
		left     time.Duration // NotAfter - RenewAt
	}{
		{"6 days, default", 6 * day, defaultFraction, 2 * day},
		{"45 days, default", 45 * day, defaultFraction, 15 * day},
		{"90 days, default", 90 * day, defaultFraction, 30 * day},
		{"1 year, default", 365 * day, defaultFraction, 365 * day / 3},
		{"10 minutes (Pebble shortlived), default", 10 * time.Minute, defaultFraction, 200 * time.Second},
		{"90 days, half", 90 * day, 0.5, 45 * day},
		{"90 days, tenth", 90 * day, 0.1, 9 * day},
		{"1 year, quarter", 365 * day, 0.25, 365 * day / 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := span(tt.lifetime)
			got := mustFraction(t, tt.f).RenewAt(v)
			if left := v.NotAfter.Sub(got); absDur(left-tt.left) > time.Microsecond {
				t.Errorf("RenewAt leaves %v, want %v", left, tt.left)
			}
		})
	}
}

func TestFractionRejectsOutOfRange(t *testing.T) {
	for _, f := range []float64{0, 1, -0.5, 1.5, math.NaN(), math.Inf(1), math.Inf(-1)} {
		if p, err := fractionPolicy(f); err == nil || !errors.Is(err, errInvalidPolicy) || p != nil {
			t.Errorf("Fraction(%v) = %v, %v; want nil, errInvalidPolicy", f, p, err)
		}
	}
}

func TestBeforeRenewAt(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		d        time.Duration
		left     time.Duration
		reason   string
	}{
		{"90 days, 30d", 90 * day, 30 * day, 30 * day, "30 days before expiry"},
		{"1 year, 30d", 365 * day, 30 * day, 30 * day, "30 days before expiry"},
		{"45 days, 30d", 45 * day, 30 * day, 30 * day, "30 days before expiry"},
		{"6 days, 36h", 6 * day, 36 * time.Hour, 36 * time.Hour, "36 hours before expiry"},
		{"6 days, 30d falls back", 6 * day, 30 * day, 2 * day,
			"30 days before expiry is not shorter than the 6 days lifetime: one third of lifetime remaining"},
		{"exactly the lifetime falls back", 90 * day, 90 * day, 30 * day,
			"90 days before expiry is not shorter than the 90 days lifetime: one third of lifetime remaining"},
		{"just under the lifetime", 90 * day, 90*day - time.Second, 90*day - time.Second, "2159h59m59s before expiry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := span(tt.lifetime)
			p := mustBefore(t, tt.d)
			if left := v.NotAfter.Sub(p.RenewAt(v)); left != tt.left {
				t.Errorf("RenewAt leaves %v, want %v", left, tt.left)
			}
			if got := policyReason(p, v); got != tt.reason {
				t.Errorf("reason = %q, want %q", got, tt.reason)
			}
		})
	}
}

func TestBeforeRejectsNonPositive(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		if _, err := beforePolicy(d); !errors.Is(err, errInvalidPolicy) {
			t.Errorf("Before(%v) error = %v, want errInvalidPolicy", d, err)
		}
	}
}

func TestPolicyString(t *testing.T) {
	tests := []struct {
		p    Policy
		want string
	}{
		{DefaultPolicy(), "one third of lifetime remaining"},
		{mustFraction(t, 0.5), "half of lifetime remaining"},
		{mustFraction(t, 2.0/3), "two thirds of lifetime remaining"},
		{mustFraction(t, 0.25), "one quarter of lifetime remaining"},
		{mustFraction(t, 0.4), "40% of lifetime remaining"},
		{mustFraction(t, 0.123), "12.3% of lifetime remaining"},
		{mustBefore(t, day), "1 day before expiry"},
		{mustBefore(t, 30*day), "30 days before expiry"},
		{mustBefore(t, time.Hour), "1 hour before expiry"},
		{mustBefore(t, 90*time.Minute), "1h30m0s before expiry"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in        string
		canonical string // MarshalText of the result
	}{
		{"default", "1/3"},
		{" DEFAULT ", "1/3"},
		{"1/3", "1/3"},
		{"2/6", "1/3"},
		{"0.25", "1/4"},
		{"25%", "1/4"},
		{"fraction:1/3", "1/3"},
		{"Fraction: 0.5", "1/2"},
		{"fraction:0.333", "fraction:0.333"},
		{"1e-3", "fraction:0.001"},
		{"30d", "30d"},
		{"1.5d", "36h0m0s"},
		{"720h", "30d"},
		{"36h30m", "36h30m0s"},
		{"before:30d", "30d"},
		{"before: 2h", "2h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePolicy(tt.in)
			if err != nil {
				t.Fatalf("ParsePolicy(%q): %v", tt.in, err)
			}
			text := marshal(t, p)
			if text != tt.canonical {
				t.Errorf("MarshalText = %q, want %q", text, tt.canonical)
			}
			// The canonical form reads back to a policy that decides alike.
			q, err := ParsePolicy(text)
			if err != nil {
				t.Fatalf("ParsePolicy(%q) of MarshalText: %v", text, err)
			}
			v := span(90 * day)
			if !p.RenewAt(v).Equal(q.RenewAt(v)) || p.String() != q.String() {
				t.Errorf("round trip %q -> %q changed the policy", tt.in, text)
			}
		})
	}
}

func TestParsePolicyRejects(t *testing.T) {
	for _, in := range []string{
		"", "  ", "30", "1", "0", "0/3", "3/3", "1/0", "1/", "/3", "-1/3", "100%", "0%", "x%",
		"nan", "inf", "-30d", "0d", "0h", "-5m", "30 days", "d", "1d12h", "fraction:30d",
		"before:1/3", "after:30d", "1e400d", "200000000d", "thirty",
	} {
		t.Run(in, func(t *testing.T) {
			p, err := ParsePolicy(in)
			if err == nil {
				t.Fatalf("ParsePolicy(%q) = %v, want an error", in, p)
			}
			if !errors.Is(err, errInvalidPolicy) {
				t.Errorf("error %v does not wrap errInvalidPolicy", err)
			}
		})
	}
}

func marshal(t *testing.T, p Policy) string {
	t.Helper()
	m, ok := p.(interface{ MarshalText() ([]byte, error) })
	if !ok {
		t.Fatalf("%T does not implement encoding.TextMarshaler", p)
	}
	b, err := m.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
