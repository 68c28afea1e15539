package fleet

import (
	"testing"

	"github.com/renewkit/renewkit/internal/fleettest"
)

// The etcd implementation keeps renew.Fleet's contract, checked by the
// suite the in-memory fake of renew's tests passes too.
func TestFleetConformance(t *testing.T) {
	cl := startCluster(t, 1)
	fleettest.TestFleet(t, func(t *testing.T) fleettest.Nodes {
		// A fresh fleet per subtest: config's prefix is the subtest's.
		a, b := twoNodes(t, cl.config(t, "node-a"))
		return fleettest.Nodes{A: a, B: b, NodeA: "node-a", NodeB: "node-b",
			Lose: func(t *testing.T, name string) {
				if _, err := a.cli.Revoke(t.Context(), a.sess.Lease()); err != nil {
					t.Fatal(err)
				}
			}}
	})
}
