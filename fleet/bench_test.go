package fleet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkReadStates1000 is a nothing-due check of 1,000 lineages: one range
// read of every lineage's meta, backoff and ARI records (the bundles, about
// 5 KiB each, stay unread), decoded and checked against the names.
//
//	go test -run '^$' -bench ReadStates1000 -count 5 ./fleet
func BenchmarkReadStates1000(b *testing.B) {
	cl := startCluster(b, 1)
	c := dial(b, cl.config(b, "bench"))
	ctx := b.Context()
	lineages := make([]Lineage, 1000)
	var ops []clientv3.Op
	flush := func() {
		if _, err := c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range lineages {
		name := fmt.Sprintf("site%04d", i)
		lin := Lineage{Name: name, Domains: []string{name + ".example.com", "www." + name + ".example.com"}}
		lineages[i] = lin
		g := testGeneration(3, fmt.Sprintf("%032x", i))
		g.Names = sortedNames(lin.Domains)
		g.CertPEM = []byte(strings.Repeat("c", 4096))
		ops = append(ops,
			clientv3.OpPut(c.keys.state(name, KindMeta), encode(metaRecord{V: recordVersion, Lineage: name, Meta: g.Meta})),
			clientv3.OpPut(c.keys.state(name, KindBackoff), encode(backoffRecord{V: recordVersion, Lineage: name, Backoff: Backoff{Failures: 1, NotBefore: time.Now()}})),
			clientv3.OpPut(c.keys.state(name, KindARI), encode(ariRecord{V: recordVersion, Lineage: name, ARI: ARI{Serial: g.Serial}})),
			clientv3.OpPut(c.keys.bundle(name), encode(bundleRecord{V: recordVersion, Lineage: name, Meta: g.Meta, CertPEM: string(g.CertPEM), Key: c.sealer.seal(g.KeyPEM, c.keys.bundle(name), name, "key")})),
		)
		if len(ops) >= 100 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
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
