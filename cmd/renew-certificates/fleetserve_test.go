//go:build unix

package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/etcdtest"
)

// -serve in fleet mode follows the fleet's watch: a generation another node
// publishes is installed at once (not at the next timer), with the node's
// own hook run; /readyz says the fleet is reachable.
func TestServeInstallsWhatTheFleetPublishes(t *testing.T) {
	bin := buildBinary(t)
	cluster := etcdtest.Start(t, 1)
	ca := startCA(t)
	cert := `name = "www"` + "\n" + `domains = ["www.example.test"]`
	reloads := filepath.Join(t.TempDir(), "reloads.log")
	node1 := newEnv(t, ca, "", cert)
	node2 := newEnv(t, ca, "", cert+fmt.Sprintf("\nhooks = [[%q, %q, %q]]", hookArgvArgs(t, reloads)...))
	addFleet(t, node1, cluster.Endpoints(), "web-1")
	addFleet(t, node2, cluster.Endpoints(), "web-2")

	node1.mustRun(t, exitOK) // generation 1, published
	p := startServe(t, bin, node2)
	p.waitLog(t, regexp.MustCompile(`msg=certificate name=www outcome=recovered`), 30*time.Second)
	first := checkLineage(t, node2, "www")
	code, rep := p.readyz(t)
	if code != http.StatusOK || rep.Fleet == nil || rep.Fleet.Reachable == nil || !*rep.Fleet.Reachable {
		t.Errorf("/readyz = %d %+v", code, rep.Fleet)
	}

	// node 1 renews (forced): node 2 installs generation 2 through the
	// watch, long before its next timer (hours away).
	node1.mustRun(t, exitOK, "-force", "www")
	second := checkLineage(t, node1, "www")
	poll(t, 30*time.Second, "node 2 to install generation 2", func() bool {
		return strings.Count(p.stderr.String(), "msg=certificate name=www outcome=recovered") >= 2
	})
	if got := checkLineage(t, node2, "www"); got.SerialNumber.Cmp(second.SerialNumber) != 0 || got.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Errorf("node 2 serves %x, want node 1's new %x", got.SerialNumber, second.SerialNumber)
	}
	// The hook runs after the swap: wait for the second line.
	var lines []string
	poll(t, 30*time.Second, "node 2's hook for generation 2", func() bool {
		lines, _ = readLines(reloads)
		return len(lines) >= 2
	})
	if len(lines) != 2 || !strings.Contains(lines[1], short(fmt.Sprintf("%x", second.SerialNumber))) {
		t.Errorf("node 2's hook ran %d times: %q", len(lines), lines)
	}
	if n := ca.Stats().Orders; n != 2 {
		t.Errorf("%d orders for two renewals of a fleet of two", n)
	}
}
