package expiry

import (
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	type want struct {
		due      bool
		source   source
		renewAt  time.Time
		reason   string // prefix
		rejected string // substring of WindowRejected
	}
	v90 := span(90 * day)
	v6 := span(6 * day)
	v45 := span(45 * day)
	v365 := span(365 * day)
	before30 := mustBefore(t, 30*day)
	ari := &Window{Start: t0.Add(58 * day), End: t0.Add(62 * day), ExplanationURL: "https://ca.test/why"}
	pastARI := &Window{Start: t0.Add(10 * day), End: t0.Add(11 * day), ExplanationURL: "https://ca.test/incident"}
	badARI := &Window{Start: t0.Add(62 * day), End: t0.Add(58 * day)}
	lateARI := &Window{Start: t0.Add(80 * day), End: t0.Add(95 * day)}
	tests := []struct {
		name string
		now  time.Time
		v    Validity
		p    Policy
		w    *Window
		u    float64
		want want
	}{
		// The default policy over several lifetimes, at edge instants.
		{"90d fresh", t0, v90, nil, nil, 0, want{false, sourcePolicy, t0.Add(60 * day), "one third of lifetime remaining", ""}},
		{"90d 1ns before due", t0.Add(60*day - 1), v90, nil, nil, 0, want{false, sourcePolicy, t0.Add(60 * day), "one third", ""}},
		{"90d exactly due", t0.Add(60 * day), v90, nil, nil, 0, want{true, sourcePolicy, t0.Add(60 * day), "one third", ""}},
		{"90d at NotAfter (still valid)", v90.NotAfter, v90, nil, nil, 0, want{true, sourcePolicy, t0.Add(60 * day), "one third", ""}},
		{"90d 1ns after NotAfter", v90.NotAfter.Add(1), v90, nil, nil, 0, want{true, sourceExpired, v90.NotAfter, "expired", ""}},
		{"45d not due", t0.Add(29 * day), v45, nil, nil, 0, want{false, sourcePolicy, t0.Add(30 * day), "one third", ""}},
		{"45d due", t0.Add(30 * day), v45, nil, nil, 0, want{true, sourcePolicy, t0.Add(30 * day), "one third", ""}},
		{"6d not due", t0.Add(4*day - time.Second), v6, nil, nil, 0, want{false, sourcePolicy, t0.Add(4 * day), "one third", ""}},
		{"6d due", t0.Add(4 * day), v6, nil, nil, 0, want{true, sourcePolicy, t0.Add(4 * day), "one third", ""}},
		{"1y not due", t0.Add(243 * day), v365, nil, nil, 0, want{false, sourcePolicy, v365.NotAfter.Add(-365 * day / 3), "one third", ""}},
		{"1y due", t0.Add(244 * day), v365, nil, nil, 0, want{true, sourcePolicy, v365.NotAfter.Add(-365 * day / 3), "one third", ""}},
		// Before(30d), including the fallback for a 6-day certificate.
		{"before30 90d not due", t0.Add(59 * day), v90, before30, nil, 0, want{false, sourcePolicy, t0.Add(60 * day), "30 days before expiry", ""}},
		{"before30 1y due", t0.Add(335 * day), v365, before30, nil, 0, want{true, sourcePolicy, t0.Add(335 * day), "30 days before expiry", ""}},
		{"before30 6d fresh falls back", t0.Add(time.Hour), v6, before30, nil, 0, want{false, sourcePolicy, t0.Add(4 * day), "30 days before expiry is not shorter than the 6 days lifetime", ""}},
		// Not yet valid: clock skew.
		{"not yet valid", t0.Add(-time.Hour), v90, nil, nil, 0, want{false, sourceNotYetValid, t0.Add(60 * day), "not yet valid: clock skew?", ""}},
		{"not yet valid, 30d policy on 6d", t0.Add(-time.Hour), v6, before30, nil, 0, want{false, sourceNotYetValid, t0.Add(4 * day), "not yet valid", ""}},
		{"valid at NotBefore", t0, v6, nil, nil, 0, want{false, sourcePolicy, t0.Add(4 * day), "one third", ""}},
		// Invalid periods.
		{"zero validity", t0, Validity{}, nil, nil, 0, want{true, sourceInvalid, t0, "no validity period known", ""}},
		{"inverted validity", t0, Validity{NotBefore: t0.Add(day), NotAfter: t0}, nil, nil, 0, want{true, sourceInvalid, t0, "invalid validity period", ""}},
		// ARI windows.
		{"ARI before window", t0.Add(50 * day), v90, nil, ari, 0.5, want{false, sourceARI, t0.Add(60 * day), "ARI suggested window", ""}},
		{"ARI overrides a due policy", t0.Add(59 * day), v90, mustFraction(t, 0.5), ari, 0.5, want{false, sourceARI, t0.Add(60 * day), "ARI suggested window", ""}},
		{"ARI in window, pick ahead", t0.Add(59 * day), v90, nil, ari, 0.75, want{false, sourceARI, t0.Add(61 * day), "ARI", ""}},
		{"ARI in window, pick passed", t0.Add(59 * day), v90, nil, ari, 0.2, want{true, sourceARI, ari.Start.Add(day * 4 / 5), "ARI window opened (explanation: https://ca.test/why)", ""}},
		{"ARI pick exactly now", t0.Add(60 * day), v90, nil, ari, 0.5, want{true, sourceARI, t0.Add(60 * day), "ARI window opened", ""}},
		{"ARI window passed", t0.Add(70 * day), v90, nil, ari, 0.9, want{true, sourceARI, ari.At(0.9), "ARI window opened", ""}},
		{"ARI incident window in the past, early in life", t0.Add(12 * day), v90, nil, pastARI, 0.5, want{true, sourceARI, pastARI.At(0.5), "ARI window opened (explanation: https://ca.test/incident)", ""}},
		{"ARI later than policy wins", t0.Add(65 * day), v90, nil, &Window{Start: t0.Add(70 * day), End: t0.Add(75 * day)}, 0, want{false, sourceARI, t0.Add(70 * day), "ARI suggested window", ""}},
		{"ARI inverted: policy used", t0.Add(61 * day), v90, nil, badARI, 0.5, want{true, sourcePolicy, t0.Add(60 * day), "one third", "not after its start"}},
		{"ARI beyond expiry: policy used", t0.Add(59 * day), v90, nil, lateARI, 0.5, want{false, sourcePolicy, t0.Add(60 * day), "one third", "after the certificate expires"}},
		{"expired beats a future ARI pick", v90.NotAfter.Add(time.Second), v90, nil, ari, 0.5, want{true, sourceExpired, v90.NotAfter, "expired", ""}},
		{"ARI past pick beats not-yet-valid", t0.Add(-time.Hour), v90, nil, &Window{Start: t0.Add(-3 * time.Hour), End: t0.Add(-2 * time.Hour)}, 0, want{true, sourceARI, t0.Add(-3 * time.Hour), "ARI window opened", ""}},
		{"not-yet-valid with a future ARI pick", t0.Add(-time.Hour), v90, nil, ari, 0.5, want{false, sourceNotYetValid, t0.Add(60 * day), "not yet valid", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideU(tt.now, tt.v, tt.p, tt.w, tt.u)
			if d.Due != tt.want.due || d.source != tt.want.source || !d.RenewAt.Equal(tt.want.renewAt) {
				t.Errorf("Decide = {Due:%v Source:%v RenewAt:%v}, want {Due:%v Source:%v RenewAt:%v}",
					d.Due, d.source, d.RenewAt, tt.want.due, tt.want.source, tt.want.renewAt)
			}
			if !strings.HasPrefix(d.Reason, tt.want.reason) {
				t.Errorf("Reason = %q, want prefix %q", d.Reason, tt.want.reason)
			}
			if (tt.want.rejected == "") != (d.WindowRejected == "") || !strings.Contains(d.WindowRejected, tt.want.rejected) {
				t.Errorf("WindowRejected = %q, want %q", d.WindowRejected, tt.want.rejected)
			}
			if d.Due && d.RenewAt.After(tt.now) {
				t.Errorf("due, but RenewAt %v is after now %v", d.RenewAt, tt.now)
			}
		})
	}
}

func TestSourceString(t *testing.T) {
	for s, want := range map[source]string{
		sourcePolicy: "policy", sourceARI: "ari", sourceExpired: "expired",
		sourceNotYetValid: "not-yet-valid", sourceInvalid: "invalid", 0: "unknown", 99: "source(99)",
	} {
		if got := s.String(); got != want {
			t.Errorf("source(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestDecideAt(t *testing.T) {
	v := span(90 * day)
	w := &Window{Start: t0.Add(58 * day), End: t0.Add(62 * day)}
	tests := []struct {
		name    string
		now     time.Time
		w       *Window
		at      time.Time
		due     bool
		source  source
		renewAt time.Time
	}{
		{"picked instant ahead", t0.Add(59 * day), w, t0.Add(61 * day), false, sourceARI, t0.Add(61 * day)},
		{"picked instant passed", t0.Add(61 * day), w, t0.Add(60 * day), true, sourceARI, t0.Add(60 * day)},
		{"zero instant clamps to Start", t0.Add(50 * day), w, time.Time{}, false, sourceARI, w.Start},
		{"stale instant before the window", t0.Add(59 * day), w, t0.Add(10 * day), true, sourceARI, w.Start},
		{"stale instant after the window", t0.Add(59 * day), w, t0.Add(70 * day), false, sourceARI, w.End.Add(-1)},
		{"no window: policy, at ignored", t0.Add(59 * day), nil, t0.Add(time.Hour), false, sourcePolicy, t0.Add(60 * day)},
		{"rejected window: policy", t0.Add(61 * day), &Window{Start: w.End, End: w.Start}, t0, true, sourcePolicy, t0.Add(60 * day)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DecideAt(tt.now, v, nil, tt.w, tt.at)
			if d.Due != tt.due || d.source != tt.source || !d.RenewAt.Equal(tt.renewAt) {
				t.Fatalf("DecideAt = {Due:%v Source:%v RenewAt:%v}, want {%v %v %v}", d.Due, d.source, d.RenewAt, tt.due, tt.source, tt.renewAt)
			}
		})
	}
	// A pick made with Window.Pick and fed back gives the same decision as
	// Decide with the number behind it.
	u := 0.37
	if a, b := decideU(t0.Add(59*day), v, nil, w, u), DecideAt(t0.Add(59*day), v, nil, w, w.At(u)); a != b {
		t.Fatalf("Decide %+v != DecideAt %+v", a, b)
	}
}
