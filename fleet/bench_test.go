package fleet

import (
	"testing"
)

// BenchmarkReadStates1000 is a nothing-due check of 1,000 lineages: one range
// read of every lineage's meta, backoff and ARI records (the bundles, about
// 5 KiB each, stay unread), decoded and checked against the names.
//
//	go test -run '^$' -bench '1000$' -count 5 ./fleet
func BenchmarkReadStates1000(b *testing.B) {
	c, certs := fill1000(b)
	ctx := b.Context()
	lineages := make([]Lineage, len(certs))
	for i, cert := range certs {
		lineages[i] = lineageOf(cert)
	}
	b.ReportAllocs()
	for b.Loop() {
		snap, err := c.ReadStates(ctx, lineages...)
		if err != nil {
			b.Fatal(err)
		}
		if st := snap.States["site0999"]; st.Err != nil || st.Meta == nil || st.Meta.Number != 3 {
			b.Fatalf("state %+v", st)
		}
	}
}

// BenchmarkView1000 is the same check as renew's fleet path makes it:
// Fleet.View of 1,000 certificates (target: 50 ms or less).
func BenchmarkView1000(b *testing.B) {
	c, certs := fill1000(b)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		recs, err := c.View(ctx, certs)
		if err != nil {
			b.Fatal(err)
		}
		if r := recs[999]; r.Err != nil || r.Current.Number != 3 {
			b.Fatalf("record %+v", r)
		}
	}
}
