package expiry

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzParseChain checks that ParseChain never panics, returns either
// certificates or an error wrapping one of its sentinels, and always names
// the input in its errors.
func FuzzParseChain(f *testing.F) {
	pki := newPKI(f, span(90*day))
	full := append(append([]byte{}, pki.leafPEM...), pki.interPEM...)
	example, err := os.ReadFile("testdata/fullchain.pem")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		nil,
		[]byte("\n"),
		pki.leafPEM,
		full,
		example,
		append(append([]byte{}, pki.keyPEM...), full...),
		append(append([]byte{}, pki.interPEM...), pki.leafPEM...),
		full[:len(full)/2],
		bytes.Replace(full, []byte("\n"), []byte("\n!"), 3),
		pki.leaf.Raw,
		[]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nMAA=\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN A-----\n-----BEGIN B-----\n-----END B-----\n"),
	} {
		f.Add(seed)
	}
	sentinels := []error{errNoCertificate, errMalformed, errTooLarge, errChainOrder}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseChain("fuzz.pem", data)
		if err != nil {
			if certs != nil {
				t.Fatal("certificates returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "expiry: fuzz.pem: ") {
				t.Fatalf("error %q does not name the input", err)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if len(certs) == 0 {
			t.Fatal("no certificates and no error")
		}
		for i, c := range certs {
			if c == nil {
				t.Fatalf("certificate %d is nil", i)
			}
		}
	})
}

// FuzzParsePolicy checks that ParsePolicy never panics, that what it accepts
// renews within the validity period, and that MarshalText reads back to a
// policy that decides alike.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"default", "1/3", "0.25", "25%", "fraction:2/3", "30d", "1.5d", "720h",
		"before:30d", "30", "", "1/0", "nan", "-3d", "9e18d", "fraction:", "before:", ":", "1e-300"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			if !errors.Is(err, errInvalidPolicy) {
				t.Fatalf("error %v does not wrap errInvalidPolicy", err)
			}
			return
		}
		if p.String() == "" {
			t.Fatal("empty String")
		}
		for _, lifetime := range []time.Duration{time.Minute, 6 * day, 90 * day, 365 * day} {
			v := span(lifetime)
			at := p.RenewAt(v)
			if at.Before(v.NotBefore) || at.After(v.NotAfter) {
				t.Fatalf("%q: RenewAt %v outside %+v", s, at, v)
			}
		}
		text := marshal(t, p)
		q, err := ParsePolicy(text)
		if err != nil {
			t.Fatalf("%q: MarshalText %q does not parse: %v", s, text, err)
		}
		v := span(90 * day)
		if !p.RenewAt(v).Equal(q.RenewAt(v)) {
			t.Fatalf("%q: round trip through %q changed RenewAt", s, text)
		}
	})
}

// FuzzDecide checks Decide's invariants over arbitrary instants, policies
// and windows: it never panics, a due decision's RenewAt is not after now, a
// not-due one's is after now (for this package's policies), and the source
// matches the validity period.
// DecideAt is checked alike, with an instant derived from the window.
func FuzzDecide(f *testing.F) {
	base := t0.UnixNano()
	f.Add(base, int64(0), int64(90*day), 1.0/3, int64(0), int64(0), 0.5, int64(60*day))
	f.Add(base, int64(0), int64(6*day), 0.5, int64(3*day), int64(4*day), 0.1, int64(3*day))
	f.Add(base, int64(0), int64(90*day), 0.0, int64(91*day), int64(92*day), 0.99, int64(-time.Hour))
	f.Add(base, int64(0), int64(-day), 0.25, int64(1), int64(0), math.NaN(), int64(0))
	f.Add(int64(math.MinInt64), int64(math.MaxInt64), int64(math.MaxInt64), 0.999999, int64(math.MinInt64), int64(math.MaxInt64), 2.0, int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, nb, nbOff, lifetime int64, frac float64, ws, we int64, u float64, nowOff int64) {
		notBefore := time.Unix(0, nb).Add(time.Duration(nbOff))
		v := Validity{NotBefore: notBefore, NotAfter: notBefore.Add(time.Duration(lifetime))}
		now := notBefore.Add(time.Duration(nowOff))
		var p Policy = DefaultPolicy()
		if q, err := fractionPolicy(frac); err == nil {
			p = q
		} else if q, err := beforePolicy(time.Duration(math.Abs(frac) * float64(day))); err == nil {
			p = q
		}
		var w *Window
		if ws != 0 || we != 0 {
			w = &Window{Start: notBefore.Add(time.Duration(ws)), End: notBefore.Add(time.Duration(we))}
		}
		at := notBefore.Add(time.Duration(ws/2 + we/2))
		for _, d := range []Decision{decideU(now, v, p, w, u), DecideAt(now, v, p, w, at)} {
			if d.Reason == "" || d.source < sourcePolicy || d.source > sourceInvalid {
				t.Fatalf("bad decision %+v", d)
			}
			if d.Due && d.RenewAt.After(now) {
				t.Fatalf("due with RenewAt %v after now %v: %+v", d.RenewAt, now, d)
			}
			if !d.Due && !d.RenewAt.After(now) {
				t.Fatalf("not due with RenewAt %v not after now %v: %+v", d.RenewAt, now, d)
			}
			switch {
			case !v.valid():
				if d.source != sourceInvalid {
					t.Fatalf("invalid period gave %v", d.source)
				}
			case v.Expired(now):
				if d.source != sourceExpired {
					t.Fatalf("expired period gave %v", d.source)
				}
			}
			// (An ARI window may start before NotBefore: a CA asking for
			// immediate renewal after an incident.)
			if d.source == sourcePolicy || d.source == sourceARI {
				if (d.source == sourcePolicy && d.RenewAt.Before(v.NotBefore)) || d.RenewAt.After(v.NotAfter) {
					t.Fatalf("RenewAt %v outside %+v: %+v", d.RenewAt, v, d)
				}
			}
			if w != nil && d.WindowRejected == "" && d.source == sourceARI {
				if d.RenewAt.Before(w.Start) || !d.RenewAt.Before(w.End) {
					t.Fatalf("ARI RenewAt %v outside the window %+v", d.RenewAt, *w)
				}
			}
		}
		_ = AlertLevel(now, v)
	})
}
