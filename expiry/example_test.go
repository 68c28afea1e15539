package expiry_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/renewkit/renewkit/expiry"
)

// A 90-day certificate under the default policy: due once a third of its
// lifetime remains.
func ExampleDecideAt() {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := expiry.Validity{NotBefore: issued, NotAfter: issued.AddDate(0, 0, 90)}
	for _, now := range []time.Time{
		issued.AddDate(0, 0, 10),
		issued.AddDate(0, 0, 61),
		issued.AddDate(0, 0, 91),
		issued.Add(-2 * time.Hour),
	} {
		d := expiry.DecideAt(now, v, nil, nil, time.Time{})
		fmt.Printf("%s due=%-5v at %s: %s\n", now.Format("Jan 02"), d.Due, d.RenewAt.Format("Jan 02"), d.Reason)
	}
	// Output:
	// Jan 11 due=false at Mar 02: one third of lifetime remaining
	// Mar 03 due=true  at Mar 02: one third of lifetime remaining
	// Apr 02 due=true  at Apr 01: expired
	// Dec 31 due=false at Mar 02: not yet valid: clock skew?
}

// The CA's ARI window overrides the policy. The instant in the window is
// picked once per certificate and persisted by the caller; here its
// position is fixed.
func ExampleDecideAt_ari() {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := expiry.Validity{NotBefore: issued, NotAfter: issued.AddDate(0, 0, 90)}
	w := &expiry.Window{Start: issued.AddDate(0, 0, 40), End: issued.AddDate(0, 0, 42)}
	u := 0.5      // e.g. rand.Float64()
	at := w.At(u) // stored in the lineage's state

	d := expiry.DecideAt(issued.AddDate(0, 0, 30), v, nil, w, at)
	fmt.Println(d.Due, d.RenewAt.Format(time.DateTime), d.Reason)
	d = expiry.DecideAt(issued.AddDate(0, 0, 41).Add(time.Minute), v, nil, w, at)
	fmt.Println(d.Due, d.RenewAt.Format(time.DateTime), d.Reason)

	// A window that ends after the certificate expires is refused.
	bad := &expiry.Window{Start: issued.AddDate(0, 0, 89), End: issued.AddDate(0, 0, 95)}
	d = expiry.DecideAt(issued.AddDate(0, 0, 30), v, nil, bad, bad.At(u))
	fmt.Println(d.Reason, "|", d.WindowRejected)
	// Output:
	// false 2026-02-11 00:00:00 ARI suggested window
	// true 2026-02-11 00:00:00 ARI window opened
	// one third of lifetime remaining | ARI window rejected: ends at 2026-04-06T00:00:00Z, after the certificate expires at 2026-04-01T00:00:00Z
}

func ExampleWindow_Pick() {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	w := expiry.Window{Start: start, End: start.Add(48 * time.Hour)}
	r := rand.New(rand.NewPCG(1, 2)) // seeded for the example; use a random seed
	at := w.Pick(r)
	fmt.Println(!at.Before(w.Start) && at.Before(w.End))
	fmt.Println(w.At(0.25).Format(time.DateTime))
	// Output:
	// true
	// 2026-03-01 12:00:00
}

func ExampleParsePolicy() {
	for _, s := range []string{"default", "1/2", "20%", "30d", "before:36h", "30"} {
		p, err := expiry.ParsePolicy(s)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Printf("%-10s %s\n", s, p)
	}
	// Output:
	// default    one third of lifetime remaining
	// 1/2        half of lifetime remaining
	// 20%        one fifth of lifetime remaining
	// 30d        30 days before expiry
	// before:36h 36 hours before expiry
	// error: expiry: policy "30": invalid renewal policy: ambiguous: a fraction must be below 1; for a duration add a unit, e.g. 30d
}

// A fixed "30 days before expiry" would renew a 6-day certificate on every
// run; the policy falls back to the default fraction for it.
func ExampleParsePolicy_before() {
	p, err := expiry.ParsePolicy("30d")
	if err != nil {
		fmt.Println(err)
		return
	}
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, days := range []int{90, 6} {
		v := expiry.Validity{NotBefore: issued, NotAfter: issued.AddDate(0, 0, days)}
		d := expiry.DecideAt(issued, v, p, nil, time.Time{})
		fmt.Printf("%d days: renew %s: %s\n", days, d.RenewAt.Format("Jan 02"), d.Reason)
	}
	// Output:
	// 90 days: renew Mar 02: 30 days before expiry
	// 6 days: renew Jan 05: 30 days before expiry is not shorter than the 6 days lifetime: one third of lifetime remaining
}

func ExampleAlertLevel() {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	long := expiry.Validity{NotBefore: issued, NotAfter: issued.AddDate(0, 0, 90)}
	short := expiry.Validity{NotBefore: issued, NotAfter: issued.AddDate(0, 0, 6)}
	for _, left := range []time.Duration{20 * 24 * time.Hour, 36 * time.Hour, 12 * time.Hour, 3 * time.Hour} {
		fmt.Printf("%5v left: 90-day %-8v 6-day %v\n", left,
			expiry.AlertLevel(long.NotAfter.Add(-left), long),
			expiry.AlertLevel(short.NotAfter.Add(-left), short))
	}
	// Output:
	// 480h0m0s left: 90-day notice   6-day ok
	// 36h0m0s left: 90-day critical 6-day notice
	// 12h0m0s left: 90-day critical 6-day warning
	// 3h0m0s left: 90-day critical 6-day critical
}

func ExampleParseChain() {
	data, err := os.ReadFile("testdata/fullchain.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	chain, err := expiry.ParseChain("testdata/fullchain.pem", data)
	if err != nil {
		fmt.Println(err)
		return
	}
	leaf := chain[0]
	v := expiry.Validity{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
	now := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	d := expiry.DecideAt(now, v, expiry.DefaultPolicy(), nil, time.Time{})
	fmt.Println(len(chain), leaf.Subject.CommonName, v.NotAfter.Format(time.DateTime))
	fmt.Println(d.Due, d.Reason, expiry.AlertLevel(now, v))

	_, err = expiry.ParseChain("key.pem", []byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	fmt.Println(err)
	// Output:
	// 2 www.example.test 2026-03-31 23:59:59
	// true one third of lifetime remaining notice
	// expiry: key.pem: no certificate: only PRIVATE KEY PEM blocks
}
