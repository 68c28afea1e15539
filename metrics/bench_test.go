package metrics

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/renewkit/renewkit/renew"
)

// BenchmarkWriteTextfile measures the end of a one-shot run over n lineages
// that were not due: gather, encode, atomic write.
func BenchmarkWriteTextfile(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			c := New()
			reg.MustRegister(c)
			for i := range n {
				name := fmt.Sprintf("lineage-%05d", i)
				c.Track(renew.Certificate{Name: name, Domains: []string{name + ".example.com"}})
				c.Finished(renew.Result{Name: name, Outcome: renew.NotDue, Serial: "0a1b2c3d4e5f",
					NotAfter: tNotAfter, RenewAt: tRenewAt, LastSuccess: tLastSuccess})
			}
			path := filepath.Join(b.TempDir(), "renewkit.prom")
			b.ReportAllocs()
			for b.Loop() {
				if err := WriteTextfile(path, reg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
