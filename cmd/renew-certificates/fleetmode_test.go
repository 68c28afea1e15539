package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/internal/etcdtest"
)

// writeSealKey writes a seal key file (64 hex digits, mode 0600) in dir.
func writeSealKey(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "fleet-seal.key")
	if err := os.WriteFile(path, []byte(strings.Repeat("5a", fleet.SealKeySize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// unreachable is an etcd endpoint nothing listens on: a closed loopback
// port, so a connection is refused at once.
func unreachable(t *testing.T) []string {
	return []string{"http://127.0.0.1:" + strconv.Itoa(etcdtest.FreePort(t))}
}

// addFleet appends a [fleet] section for endpoints to env's configuration
// (with a seal key file of its own, node name node and short timeouts) and
// returns the seal key's path.
func addFleet(t *testing.T, env *testEnv, endpoints []string, node string) string {
	t.Helper()
	seal := writeSealKey(t, filepath.Dir(env.config))
	var eps []string
	for _, e := range endpoints {
		eps = append(eps, strconv.Quote(e))
	}
	section := fmt.Sprintf("\n[fleet]\nendpoints = [%s]\nseal_key_file = %q\nnode = %q\nrequest_timeout = \"300ms\"\nlock_ttl = \"2s\"\n",
		strings.Join(eps, ", "), seal, node)
	f, err := os.OpenFile(env.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(section); err != nil {
		t.Fatal(err)
	}
	return seal
}

// fleetClient dials the cluster as node with the seal key at seal.
func fleetClient(t *testing.T, endpoints []string, seal, node string) *fleet.Client {
	t.Helper()
	c, err := fleet.Dial(fleet.Config{Endpoints: endpoints, SealKeyFile: seal, Node: node, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// localSerial is the serial of NAME's installed certificate, as -status
// -json reports it.
func localSerial(t *testing.T, env *testEnv, name string) string {
	t.Helper()
	out, _ := env.mustRun(t, exitOK, "-status", "-json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-status -json: %v\n%s", err, out)
	}
	for _, c := range rep.Certificates {
		if c.Name == name && c.Serial != "" {
			return c.Serial
		}
	}
	t.Fatalf("%s: no serial in\n%s", name, out)
	return ""
}

// -status shows, per lineage, the fleet's view (generation, serial against
// the local serial, lock holder, order in progress, backoff, bad records)
// from one range read, in text and in JSON.
func TestStatusShowsTheFleetView(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	ca := startCA(t)
	env := newEnv(t, ca, "",
		`name = "a"`+"\n"+`domains = ["a.example.test"]`,
		`name = "b"`+"\n"+`domains = ["b.example.test"]`,
		`name = "c"`+"\n"+`domains = ["c.example.test"]`)
	env.mustRun(t, exitOK, "-cert", "a")
	serialA := localSerial(t, env, "a")
	seal := addFleet(t, env, cluster.Endpoints(), "web-1")

	ctx := t.Context()
	now := time.Now().UTC()
	other := fleetClient(t, cluster.Endpoints(), seal, "web-2")
	// a: the fleet's generation 4 is the one installed here, and web-2
	// holds the lock.
	la, err := other.TryLockFenced(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	pem := []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
	gen := func(n int64, serial, name string) fleet.Generation {
		return fleet.Generation{Meta: fleet.Meta{Number: n, Serial: serial, Names: []string{name + ".example.test"},
			NotBefore: now, NotAfter: now.Add(90 * 24 * time.Hour)}, CertPEM: pem, KeyPEM: pem}
	}
	if err := other.PublishGeneration(ctx, la, fleet.Lineage{Name: "a", Domains: []string{"a.example.test"}}, gen(4, serialA, "a")); err != nil {
		t.Fatal(err)
	}
	// b: generation 2 is not installed here, web-3 has an order in
	// progress, and the fleet backs off after two failures.
	third := fleetClient(t, cluster.Endpoints(), seal, "web-3")
	lb, err := third.TryLockFenced(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	linB := fleet.Lineage{Name: "b", Domains: []string{"b.example.test"}}
	if err := third.PublishGeneration(ctx, lb, linB, gen(2, "0badc0de", "b")); err != nil {
		t.Fatal(err)
	}
	if err := third.PutJournal(ctx, lb, linB, fleet.Journal{OrderURL: "https://ca.test/order/77", Names: linB.Domains, Created: now.Add(-3 * time.Minute), KeyPEM: pem}); err != nil {
		t.Fatal(err)
	}
	if err := third.PutBackoff(ctx, lb, fleet.Backoff{Failures: 2, LastFailure: now, NotBefore: now.Add(time.Hour), LastError: "urn:ietf:params:acme:error:rateLimited"}); err != nil {
		t.Fatal(err)
	}
	if err := lb.Unlock(); err != nil {
		t.Fatal(err)
	}
	// c: a garbage record, and the lock held by a process of this node
	// (another run of web-1).
	self := fleetClient(t, cluster.Endpoints(), seal, "web-1")
	if _, err := self.TryLockFenced(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	raw, err := clientv3.New(clientv3.Config{Endpoints: cluster.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Put(ctx, fleet.DefaultPrefix+"v1/state/c/meta", "{not json"); err != nil {
		t.Fatal(err)
	}

	// c's bad record makes the exit code 1.
	out, _ := env.mustRun(t, exitFailed, "-status")
	_, fleetPart, ok := strings.Cut(out, "\nFleet (etcd ")
	if !ok {
		t.Fatalf("no fleet table:\n%s", out)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(fleetPart, "\n") {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == "a" || f[0] == "b" || f[0] == "c") {
			rows[f[0]] = f
		}
	}
	if !strings.HasPrefix(fleetPart, cluster.Endpoints()[0]+"; this node: web-1):") {
		t.Errorf("fleet header: %s", out)
	}
	// a was installed before fleet mode: no fleet number recorded here.
	if r := rows["a"]; len(r) < 7 || r[1] != "4" || r[3] != "-" || r[4] != r[2] || r[5] != "yes" || r[6] != "web-2" {
		t.Errorf("row a: %q\n%s", r, out)
	}
	if r := rows["b"]; len(r) < 8 || r[1] != "2" || r[2] != "0badc0de" || r[3] != "-" || r[4] != "-" || r[5] != "no" || r[6] != "-" || !strings.HasPrefix(r[7], "web-3,") {
		t.Errorf("row b: %q\n%s", r, out)
	}
	if r := rows["c"]; len(r) < 8 || r[6] != "web-1" || r[7] != "(this" {
		t.Errorf("row c: %q\n%s", r, out)
	}
	for _, want := range []string{
		"b: fleet: generation 2 (serial 0badc0de, published by web-3",
		"b: fleet: order https://ca.test/order/77 placed by web-3 3m ago is in progress",
		"b: fleet: 2 failed renewals (last on web-3): no node orders before ",
		"last error: urn:ietf:params:acme:error:rateLimited",
		"c: fleet: record error: ", "/renewkit/v1/state/c/meta",
	} {
		if !strings.Contains(fleetPart, want) {
			t.Errorf("fleet part lacks %q:\n%s", want, out)
		}
	}

	if strings.Contains(fleetPart, "c: fleet: the fleet has no generation") {
		t.Errorf("a bad record is not \"no generation\":\n%s", fleetPart)
	}
	if strings.Contains(fleetPart, "\na: fleet") {
		t.Errorf("a is in sync and held: nothing to note:\n%s", fleetPart)
	}

	out, _ = env.mustRun(t, exitFailed, "-status", "-json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-status -json: %v\n%s", err, out)
	}
	if rep.Fleet == nil || !rep.Fleet.Reachable || rep.Fleet.Revision == 0 || rep.Fleet.Node != "web-1" || len(rep.Certificates) != 3 {
		t.Fatalf("-status -json: %s", out)
	}
	a, b, c := rep.Certificates[0].Fleet, rep.Certificates[1].Fleet, rep.Certificates[2].Fleet
	if a == nil || a.Generation != 4 || a.Serial != serialA || !a.InSync || a.Holder != "web-2" || a.HolderSince.IsZero() || a.Publisher != "web-2" {
		t.Errorf("a: %+v", a)
	}
	if b == nil || b.InSync || b.Order == nil || b.Order.Node != "web-3" || b.Order.AgeSeconds < 170 || b.Failures != 2 || b.RetryNotBefore.IsZero() || b.Holder != "" {
		t.Errorf("b: %+v", b)
	}
	if c == nil || !strings.Contains(c.Error, "v1/state/c/meta") {
		t.Errorf("c: %+v", c)
	}
}

// With etcd unreachable, -status still shows the local state, says the
// fleet is unreachable and what to check, and exits 1.
func TestStatusFleetUnreachable(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	addFleet(t, env, unreachable(t), "web-1")

	code, out, errOut := env.run(t, t.Context(), "-status")
	if code != exitFailed {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitFailed, out, errOut)
	}
	for _, want := range []string{"NAME", "\na ", "fleet: unreachable: ", "this node's local state only", "a majority of the etcd members"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = env.run(t, t.Context(), "-status", "-json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitFailed {
		t.Fatalf("-status -json: exit %d, %v\n%s", code, err, out)
	}
	if rep.Fleet == nil || rep.Fleet.Reachable || !strings.Contains(rep.Fleet.Error, "etcd unavailable") || len(rep.Certificates) != 1 || rep.Certificates[0].Name != "a" {
		t.Errorf("-status -json: %s", out)
	}
	// A seal key that cannot be used: the local state, the problem with
	// its line, exit 2.
	sealPath := filepath.Join(filepath.Dir(env.config), "fleet-seal.key")
	if err := os.Chmod(sealPath, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = env.run(t, t.Context(), "-status")
	if code != exitUsage || !strings.Contains(out, "\na ") || !strings.Contains(out, "fleet: not read: "+env.config+":") || !strings.Contains(out, "seal_key_file") {
		t.Errorf("-status with a bad seal key: exit %d, want %d:\n%s", code, exitUsage, out)
	}
	// -no-fleet: the local state only, and no complaint.
	out, _ = env.mustRun(t, exitOK, "-status", "-no-fleet")
	if strings.Contains(out, "fleet") {
		t.Errorf("-status -no-fleet shows the fleet:\n%s", out)
	}
}

// -dry-run checks the seal key file (mode, content) and reads etcd once; a
// problem names the key and the fix.
func TestDryRunChecksTheFleet(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	seal := addFleet(t, env, cluster.Endpoints(), "web-1")
	sealLine := 0
	data, _ := os.ReadFile(env.config)
	for i, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "seal_key_file") {
			sealLine = i + 1
		}
	}

	out, _ := env.mustRun(t, exitOK, "-dry-run")
	if !strings.Contains(out, "fleet: etcd answered (revision ") || !strings.Contains(out, "a: would renew now") {
		t.Errorf("dry run:\n%s", out)
	}
	// After a run (this node orders and publishes generation 1), and on
	// another node that has not installed it yet.
	env.mustRun(t, exitOK)
	if out, _ := env.mustRun(t, exitOK, "-dry-run"); !strings.Contains(out, "a: the fleet's generation 1 is the one installed here") {
		t.Errorf("dry run after the run:\n%s", out)
	}
	other := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	addFleet(t, other, cluster.Endpoints(), "web-2")
	if out, _ := other.mustRun(t, exitOK, "-dry-run"); !strings.Contains(out, "a: would first install the fleet's generation 1 (serial ") || !strings.Contains(out, "published by web-1)") {
		t.Errorf("dry run on another node:\n%s", out)
	}
	// A node configured with other names: renew would not install the
	// fleet's generation (it orders for its names), and the dry run says so
	// instead of "would first install" (issue 23: the plan is the run's).
	renamed := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test", "www.a.example.test"]`)
	addFleet(t, renamed, cluster.Endpoints(), "web-3")
	if out, _ := renamed.mustRun(t, exitOK, "-dry-run"); strings.Contains(out, "would first install") ||
		!strings.Contains(out, "a: would not install the fleet's generation 1 (serial ") || !strings.Contains(out, "it is for other names") {
		t.Errorf("dry run on a node with other names:\n%s", out)
	}

	if err := os.Chmod(seal, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := env.run(t, t.Context(), "-dry-run")
	want := fmt.Sprintf("fleet: problem: %s:%d: fleet: seal_key_file: ", env.config, sealLine)
	if code != exitUsage || !strings.Contains(out, want) || !strings.Contains(out, "chmod 0600") {
		t.Errorf("seal key readable by others: exit %d, want %d and %q with the fix:\n%s", code, exitUsage, want, out)
	}
	if err := os.WriteFile(seal, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = env.run(t, t.Context(), "-dry-run")
	if code != exitUsage || !strings.Contains(out, want) || !strings.Contains(out, "openssl rand -hex 32") {
		t.Errorf("seal key of the wrong size: exit %d:\n%s", code, out)
	}
	if err := os.Remove(seal); err != nil {
		t.Fatal(err)
	}
	code, out, _ = env.run(t, t.Context(), "-dry-run")
	if code != exitUsage || !strings.Contains(out, want) || !strings.Contains(out, "(missing)") {
		t.Errorf("seal key missing: exit %d:\n%s", code, out)
	}

	env2 := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	addFleet(t, env2, unreachable(t), "web-1")
	code, out, _ = env2.run(t, t.Context(), "-dry-run")
	if code != exitFailed || !strings.Contains(out, "fleet: problem: etcd (http://127.0.0.1:") || !strings.Contains(out, "would be deferred") || !strings.Contains(out, "check [fleet] endpoints") {
		t.Errorf("etcd unreachable: exit %d, want %d:\n%s", code, exitFailed, out)
	}
	out, _ = env2.mustRun(t, exitOK, "-dry-run", "-no-fleet")
	if !strings.Contains(out, "fleet: not consulted (-no-fleet)") || strings.Contains(out, "problem") {
		t.Errorf("-dry-run -no-fleet:\n%s", out)
	}
}

// A run whose seal key cannot be used stops before doing anything, naming
// the key's line.
func TestRunRefusesABadSealKey(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	seal := addFleet(t, env, unreachable(t), "web-1")
	if err := os.Chmod(seal, 0o640); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := env.run(t, t.Context())
	if code != exitUsage || !strings.Contains(errOut, env.config+":") || !strings.Contains(errOut, "fleet: seal_key_file: ") {
		t.Errorf("exit %d, want %d naming fleet.seal_key_file:\n%s", code, exitUsage, errOut)
	}
	if n := ca.Stats().Orders; n != 0 {
		t.Errorf("%d orders", n)
	}
}

// -no-fleet runs one invocation as a single node, loudly, without
// contacting etcd; it is refused where it makes no sense.
func TestNoFleet(t *testing.T) {
	t.Parallel()
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	addFleet(t, env, unreachable(t), "web-1")
	_, log := env.mustRun(t, exitOK, "-no-fleet")
	if got := summaries(log); got["a"] != "renewed" {
		t.Errorf("summaries = %v\n%s", got, log)
	}
	if !strings.Contains(log, "level=WARN msg=\"-no-fleet: fleet mode is off for this run;") || !strings.Contains(log, "fault=fleet") {
		t.Errorf("no warning about -no-fleet:\n%s", log)
	}
	checkLineage(t, env, "a")

	code, _, errOut := env.run(t, t.Context(), "-no-fleet", "-serve")
	if code != exitUsage || !strings.Contains(errOut, "-no-fleet is for one run at a time") {
		t.Errorf("-no-fleet -serve: exit %d: %s", code, errOut)
	}
	plain := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	code, _, errOut = plain.run(t, t.Context(), "-no-fleet")
	if code != exitUsage || !strings.Contains(errOut, "has no [fleet] section") {
		t.Errorf("-no-fleet without [fleet]: exit %d: %s", code, errOut)
	}
	if code, _, errOut = plain.run(t, t.Context(), "-json"); code != exitUsage || !strings.Contains(errOut, "-json is for -status") {
		t.Errorf("-json without -status: exit %d: %s", code, errOut)
	}
}
