package fleet

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// Two renew.Renewers with Roots and ACME accounts of their own share an
// embedded etcd through two Clients: the fleet path of renew on the real
// adapter. They run concurrently; one order per renewal, and both serve
// the same certificate and key.
func TestRenewersShareOneOrder(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	caPEM, err := os.ReadFile(ca.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	domains := []string{"shared.example.test", "www.shared.example.test"}
	var renewers []*renew.Renewer
	for i, f := range []*Client{a, b} {
		dir := filepath.Join(base, string(rune('a'+i)))
		iss, err := acmeissuer.New(t.Context(), acmeissuer.Config{DirectoryURL: ca.DirectoryURL(), AgreeTOS: true, AccountDir: filepath.Join(dir, "account"), CARootsPEM: caPEM, HTTP01: &acmeissuer.HTTP01{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { iss.Close() })
		renewers = append(renewers, &renew.Renewer{Root: filepath.Join(dir, "certs"), Issuer: iss, Roots: ca.RootPool(), Fleet: f})
	}
	c := renew.Certificate{Name: "shared", Domains: domains, Profile: "default"}
	for round := 1; round <= 2; round++ {
		results := make([]renew.Result, 2)
		var wg sync.WaitGroup
		for i, r := range renewers {
			cc := c
			cc.Force = round == 2 && i == 0
			wg.Go(func() { results[i] = r.Run(context.Background(), cc)[0] })
		}
		wg.Wait()
		for i, r := range renewers {
			if results[i].Outcome == renew.Locked || results[i].FleetGeneration != uint64(round) {
				results[i] = r.Run(context.Background(), c)[0] // ran before the other published
			}
			if res := results[i]; !res.Outcome.OK() || res.FleetGeneration != uint64(round) {
				t.Fatalf("round %d, node %d: %v (fleet generation %d)", round, i, res, res.FleetGeneration)
			}
		}
		if st := ca.Stats(domains...); st.Orders != round || st.Issued != round {
			t.Fatalf("round %d: %d orders, %d issued", round, st.Orders, st.Issued)
		}
		var keys, certs [][]byte
		for _, r := range renewers {
			k, err := os.ReadFile(filepath.Join(r.Root, "shared", "privkey.pem"))
			if err != nil {
				t.Fatal(err)
			}
			crt, err := os.ReadFile(filepath.Join(r.Root, "shared", "cert.pem"))
			if err != nil {
				t.Fatal(err)
			}
			keys, certs = append(keys, k), append(certs, crt)
		}
		if !bytes.Equal(keys[0], keys[1]) || !bytes.Equal(certs[0], certs[1]) {
			t.Fatalf("round %d: the nodes serve different certificates or keys", round)
		}
	}
	// Nothing due: one View each, no lock.
	for _, r := range renewers {
		if res := r.Run(context.Background(), c)[0]; res.Outcome != renew.NotDue || res.FleetGeneration != 2 {
			t.Fatalf("nothing due: %v", res)
		}
	}
}
