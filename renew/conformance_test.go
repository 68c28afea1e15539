package renew_test

import (
	"testing"

	"github.com/renewkit/renewkit/internal/fleettest"
	"github.com/renewkit/renewkit/renew"
)

// The in-memory fake of renew's fleet tests keeps the contract the etcd
// implementation keeps (package fleet runs the same suite).
func TestMemFleetConformance(t *testing.T) {
	fleettest.TestFleet(t, func(t *testing.T) fleettest.Nodes {
		fleets, lose := renew.MemFleet("node-a", "node-b")
		return fleettest.Nodes{A: fleets[0], B: fleets[1], NodeA: "node-a", NodeB: "node-b",
			Lose: func(t *testing.T, name string) { lose(name) }}
	})
}
