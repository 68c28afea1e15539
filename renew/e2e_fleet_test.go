package renew_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
)

// Two nodes with Roots and ACME accounts of their own share a fleet and a
// real ACME CA: one order per renewal, both serve the same certificate and
// key, each node's hook runs once per generation.
func TestE2EFleetTwoNodesOneOrder(t *testing.T) {
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	base := t.TempDir()
	fleets := renew.MemFleetNodes("a", "b")
	type node struct {
		r    *renew.Renewer
		c    renew.Certificate
		runs int
		mu   sync.Mutex
	}
	domains := []string{"shared.example.test", "www.shared.example.test"}
	nodes := make([]*node, 2)
	for i, name := range []string{"a", "b"} {
		iss := newIssuer(t, ca.DirectoryURL(), ca.CAFile(), "", filepath.Join(base, name, "account"))
		n := &node{r: &renew.Renewer{Root: filepath.Join(base, name, "certs"), Issuer: iss, Roots: ca.RootPool(), Fleet: fleets[i], Retry: shortRetry()}}
		n.c = renew.Certificate{Name: "shared", Domains: domains, Profile: "default",
			Hooks: []hooks.Hook{hooks.Func("reload-"+name, func(context.Context, hooks.Event) error { n.mu.Lock(); n.runs++; n.mu.Unlock(); return nil })}}
		nodes[i] = n
	}
	for round := 1; round <= 2; round++ {
		results := make([]renew.Result, 2)
		var wg sync.WaitGroup
		for i, n := range nodes {
			c := n.c
			c.Force = round > 1 && i == 0 // a renews; b follows
			wg.Go(func() { results[i] = n.r.Run(context.Background(), c)[0] })
		}
		wg.Wait()
		for i, n := range nodes {
			if results[i].Outcome == renew.Locked || (round > 1 && i == 1 && results[i].FleetGeneration != uint64(round)) {
				// b ran before a published (or found a's lock): once more.
				results[i] = n.r.Run(context.Background(), n.c)[0]
			}
			if res := results[i]; (res.Outcome != renew.Renewed && res.Outcome != renew.Recovered) || res.FleetGeneration != uint64(round) {
				t.Fatalf("round %d node %d: %v (fleet generation %d)", round, i, res, res.FleetGeneration)
			}
		}
		if st := ca.Stats(domains...); st.Orders != round || st.Issued != round {
			t.Fatalf("round %d: the CA saw %d orders, issued %d", round, st.Orders, st.Issued)
		}
		var serials []string
		var keys [][]byte
		for _, n := range nodes {
			dir := filepath.Join(n.r.Root, "shared")
			serials = append(serials, servedLeaf(t, dir, ca.RootPool()).SerialNumber.String())
			k, err := os.ReadFile(filepath.Join(dir, "privkey.pem"))
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
			n.mu.Lock()
			if n.runs != round {
				t.Errorf("round %d: a hook ran %d times", round, n.runs)
			}
			n.mu.Unlock()
		}
		if serials[0] != serials[1] || !bytes.Equal(keys[0], keys[1]) {
			t.Fatalf("round %d: the nodes serve %v (same key: %v)", round, serials, bytes.Equal(keys[0], keys[1]))
		}
	}
}
