package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/internal/etcdtest"
)

// etcd unreachable: the run is deferred, changes nothing, places no order,
// says in one line that the installed certificate is still served and
// what to check, logs fault=fleet, and exits 1.
func TestRunDeferredWhenTheFleetIsUnreachable(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	addFleet(t, env, unreachable(t), "web-1")

	prom := filepath.Join(t.TempDir(), "renewkit.prom")
	code, out, errOut := env.run(t, t.Context(), "-metrics-file", prom)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailed, out, errOut)
	}
	if got := summaries(errOut); got["a"] != "deferred" {
		t.Errorf("summaries = %v\n%s", got, errOut)
	}
	var msg []string
	for _, l := range strings.Split(errOut, "\n") {
		if strings.HasPrefix(l, "renew-certificates: ") {
			msg = append(msg, l)
		}
	}
	if len(msg) != 1 || !strings.Contains(msg[0], "renewal of a deferred") || !strings.Contains(msg[0], "the installed certificate is still served") ||
		!strings.Contains(msg[0], "check [fleet] endpoints") || !strings.Contains(msg[0], "majority of the etcd members") {
		t.Errorf("want one line saying the certificate is still served and what to check, got %q", msg)
	}
	// The certificate's summary record, and the run's warning.
	for _, re := range []string{`msg=certificate name=a outcome=deferred .*fault=fleet`, `level=WARN msg="renewal deferred: .* fault=fleet`} {
		if !regexp.MustCompile(re).MatchString(errOut) {
			t.Errorf("no log record matching %s:\n%s", re, errOut)
		}
	}
	if n := ca.Stats().Orders; n != 0 {
		t.Errorf("a deferred run placed %d orders", n)
	}
	metrics, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`renewkit_fleet_reachable{name="a"} 0`, `renewkit_renewal_runs_total{name="a",outcome="deferred"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics file lacks %s:\n%s", want, metrics)
		}
	}
	if _, err := os.Stat(filepath.Join(env.root, "a")); err == nil {
		t.Errorf("a deferred run created the lineage")
	}
}

// Two nodes (two storage roots) with the same [fleet] and CA: the first
// orders and publishes, the second installs the fleet's generation: one
// order, the same serial and key on both.
func TestTwoNodesOneOrder(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	ca := startCA(t)
	cert := `name = "www"` + "\n" + `domains = ["www.example.test", "example.test"]`
	node1 := newEnv(t, ca, "", cert)
	node2 := newEnv(t, ca, "", cert)
	addFleet(t, node1, cluster.Endpoints(), "web-1")
	addFleet(t, node2, cluster.Endpoints(), "web-2")

	_, log1 := node1.mustRun(t, exitOK)
	if got := summaries(log1); got["www"] != "renewed" {
		t.Errorf("node 1: %v\n%s", got, log1)
	}
	_, log2 := node2.mustRun(t, exitOK)
	if got := summaries(log2); got["www"] != "recovered" {
		t.Errorf("node 2: %v\n%s", got, log2)
	}
	if n := ca.Stats().Orders; n != 1 {
		t.Errorf("%d orders for one renewal of a fleet of two", n)
	}
	leaf1, leaf2 := checkLineage(t, node1, "www"), checkLineage(t, node2, "www")
	if leaf1.SerialNumber.Cmp(leaf2.SerialNumber) != 0 {
		t.Errorf("serials differ: %x and %x", leaf1.SerialNumber, leaf2.SerialNumber)
	}
	// Both nothing to do now, and both in sync in -status.
	for i, env := range []*testEnv{node1, node2} {
		_, log := env.mustRun(t, exitOK, "-log-level", "debug")
		if got := summaries(log); got["www"] != "not_due" {
			t.Errorf("node %d again: %v", i+1, got)
		}
		out, _ := env.mustRun(t, exitOK, "-status")
		if !regexp.MustCompile(`\nwww +1 +\S+ +1 +\S+ +yes `).MatchString(out) {
			t.Errorf("node %d not in sync with the fleet's generation 1:\n%s", i+1, out)
		}
	}
	if n := ca.Stats().Orders; n != 1 {
		t.Errorf("%d orders after runs with nothing due", n)
	}
}

// The escape hatch and back: a node that renewed alone with -no-fleet
// (its own order, its own key) installs the fleet's generation again at
// its next ordinary run, since the fleet's is not due; no further order.
func TestNoFleetAndBack(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	ca := startCA(t)
	cert := `name = "www"` + "\n" + `domains = ["www.example.test"]`
	node1 := newEnv(t, ca, "", cert)
	node2 := newEnv(t, ca, "", cert)
	addFleet(t, node1, cluster.Endpoints(), "web-1")
	addFleet(t, node2, cluster.Endpoints(), "web-2")
	node1.mustRun(t, exitOK)
	fleetLeaf := checkLineage(t, node1, "www")

	_, log := node2.mustRun(t, exitOK, "-no-fleet", "-force", "www")
	if got := summaries(log); got["www"] != "renewed" {
		t.Fatalf("node 2 alone: %v\n%s", got, log)
	}
	if alone := checkLineage(t, node2, "www"); alone.SerialNumber.Cmp(fleetLeaf.SerialNumber) == 0 {
		t.Fatal("-no-fleet installed the fleet's certificate instead of ordering its own")
	}
	_, log = node2.mustRun(t, exitOK)
	if got := summaries(log); got["www"] != "recovered" {
		t.Errorf("node 2 back in the fleet: %v\n%s", got, log)
	}
	if back := checkLineage(t, node2, "www"); back.SerialNumber.Cmp(fleetLeaf.SerialNumber) != 0 {
		t.Errorf("node 2 serves %x, want the fleet's %x", back.SerialNumber, fleetLeaf.SerialNumber)
	}
	if n := ca.Stats().Orders; n != 2 {
		t.Errorf("%d orders, want 2 (the fleet's and the one -no-fleet placed)", n)
	}
}
