package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/internal/etcdtest"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// The program built with the crash points (-tags renewkit_crashpoints),
// once per test binary.
var (
	crashOnce sync.Once
	crashDir  string // removed by TestMain
	crashPath string
	crashErr  error
)

func buildCrashBinary(t *testing.T) string {
	t.Helper()
	crashOnce.Do(func() {
		crashDir, crashErr = os.MkdirTemp("", "renew-certificates-crash-")
		if crashErr != nil {
			return
		}
		crashPath = filepath.Join(crashDir, "renew-certificates")
		out, err := exec.Command("go", "build", "-tags", "renewkit_crashpoints", "-o", crashPath, ".").CombinedOutput()
		if err != nil {
			crashErr = errors.New("go build -tags renewkit_crashpoints: " + err.Error() + "\n" + string(out))
		}
	})
	if crashErr != nil {
		t.Fatal(crashErr)
	}
	return crashPath
}

// accountKeyOf is the account key file of env's configuration (the
// default account directory under its root).
func accountKeyOf(env *testEnv) string {
	return filepath.Join(acmeissuer.DefaultAccountDir(env.root, env.ca.DirectoryURL()), "account.key")
}

// waitLockReleased waits until the fleet lock of lineage name is gone
// (its holder's lease expired), watching the key rather than polling.
func waitLockReleased(t *testing.T, endpoints []string, name string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	key := "/renewkit/v1/state/" + name + "/lock"
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return
	}
	for wr := range cli.Watch(ctx, key, clientv3.WithRev(resp.Header.Revision+1)) {
		for _, ev := range wr.Events {
			if ev.Type == clientv3.EventTypeDelete {
				return
			}
		}
	}
	t.Fatalf("the fleet lock %s was not released: %v", key, ctx.Err())
}

// Two nodes with their own account directories and roots: the fleet
// shares one ACME account key. The lock holder is killed after it fetched
// the certificate (finalized, not published); the other node, which
// adopted the fleet's account key, resumes the journaled order: exactly
// one issuance. Without the shared account the CA refuses the other
// account's order and the node orders a second time.
func TestFleetSharesOneAccount(t *testing.T) {
	t.Parallel()
	bin := buildCrashBinary(t)
	cluster := etcdtest.Start(t, 1)
	ca := startCA(t)
	domains := []string{"www.example.test"}
	cert := `name = "www"` + "\n" + `domains = ["www.example.test"]`
	node1 := newEnv(t, ca, "", cert)
	node2 := newEnv(t, ca, "", cert)
	addFleet(t, node1, cluster.Endpoints(), "web-1")
	addFleet(t, node2, cluster.Endpoints(), "web-2")

	// -dry-run on a node without any account says what a run would do.
	out, _ := node2.mustRun(t, exitOK, "-dry-run")
	if !strings.Contains(out, "fleet: account: neither this node nor the fleet has an ACME account key") {
		t.Errorf("-dry-run does not say the account will be created and shared:\n%s", out)
	}

	// Node 1 dies right after fetching the certificate of its order.
	cmd := exec.Command(bin, "-config", node1.config)
	cmd.Env = append(os.Environ(), "RENEWKIT_CRASH_AT=renew.run:8")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("node 1 was not killed at renew.run:8: %v\n%s", err, stderr.String())
	}
	if st := ca.Stats(domains...); st.Issued != 1 {
		t.Fatalf("before the takeover: %d issued, want 1", st.Issued)
	}
	key1, err := os.ReadFile(accountKeyOf(node1))
	if err != nil {
		t.Fatal(err)
	}

	// Node 2 has its own key (say, from an earlier single-node life).
	if _, err := (&acmeissuer.Config{AccountDir: filepath.Dir(accountKeyOf(node2)), DirectoryURL: ca.DirectoryURL()}).AccountKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	own2, err := os.ReadFile(accountKeyOf(node2))
	if err != nil {
		t.Fatal(err)
	}
	out, _ = node2.mustRun(t, exitOK, "-dry-run")
	if !strings.Contains(out, "fleet: account: the local ACME account key is not the fleet's") {
		t.Errorf("-dry-run does not say the fleet's key will be adopted:\n%s", out)
	}

	waitLockReleased(t, cluster.Endpoints(), "www")
	_, log := node2.mustRun(t, exitOK)
	if got := summaries(log); got["www"] != "recovered" || !strings.Contains(log, "finishing the order journaled in the fleet") {
		t.Errorf("node 2 did not finish the journaled order: %v\n%s", got, log)
	}
	if !strings.Contains(log, "adopted the fleet's ACME account key for CA "+ca.DirectoryURL()) {
		t.Errorf("node 2 did not log the adoption:\n%s", log)
	}
	if st := ca.Stats(domains...); st.Issued != 1 || st.Orders != 1 {
		t.Errorf("after the takeover: %d orders, %d issued; want 1 and 1 (the journaled order resumed)", st.Orders, st.Issued)
	}
	key2, err := os.ReadFile(accountKeyOf(node2))
	if err != nil || !bytes.Equal(key1, key2) {
		t.Errorf("the nodes' account keys differ (%v)", err)
	}
	if old, _ := os.ReadFile(accountKeyOf(node2) + ".old"); !bytes.Equal(old, own2) {
		t.Error("node 2's own key was not kept as account.key.old")
	}

	// Node 1 comes back and installs the fleet's generation.
	_, log = node1.mustRun(t, exitOK)
	if got := summaries(log); got["www"] != "recovered" {
		t.Errorf("node 1 back: %v\n%s", got, log)
	}
	if a, b := checkLineage(t, node1, "www"), checkLineage(t, node2, "www"); a.SerialNumber.Cmp(b.SerialNumber) != 0 {
		t.Errorf("serials differ: %x and %x", a.SerialNumber, b.SerialNumber)
	}
	for i, env := range []*testEnv{node1, node2} {
		out, _ := env.mustRun(t, exitOK, "-status")
		if !strings.Contains(out, "fleet: account: the local ACME account key is the fleet's") {
			t.Errorf("node %d: -status does not say its account key is the fleet's:\n%s", i+1, out)
		}
	}
	if st := ca.Stats(domains...); st.Issued != 1 {
		t.Errorf("%d issued in all, want 1", st.Issued)
	}
}

// A fleet account record no node can use fails every certificate naming
// the etcd key, and nothing is ordered (not with another account either);
// -no-fleet neither reads nor writes it.
func TestFleetAccountRecordUnusable(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	addFleet(t, env, cluster.Endpoints(), "web-1")
	sum := sha256.Sum256([]byte(ca.DirectoryURL()))
	key := "/renewkit/v1/account/" + hex.EncodeToString(sum[:8])
	cli, err := clientv3.New(clientv3.Config{Endpoints: cluster.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(t.Context(), key, "garbage"); err != nil {
		t.Fatal(err)
	}
	code, out, log := env.run(t, t.Context())
	if code != exitFailed {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitFailed, out, log)
	}
	if got := summaries(log); got["a"] != "failed" || !strings.Contains(log, key) {
		t.Errorf("want a failed certificate naming %s: %v\n%s", key, got, log)
	}
	if n := ca.Stats().Orders; n != 0 {
		t.Errorf("%d orders with an unusable fleet account", n)
	}
	out, _ = env.mustRun(t, exitFailed, "-status")
	if !strings.Contains(out, "fleet: account: the fleet's ACME account key cannot be read: ") || !strings.Contains(out, key) {
		t.Errorf("-status does not name the unusable account record:\n%s", out)
	}
	out, _ = env.mustRun(t, exitFailed, "-dry-run")
	if !strings.Contains(out, "fleet: problem: account: the fleet's ACME account key cannot be read: ") {
		t.Errorf("-dry-run does not report the unusable account record:\n%s", out)
	}

	if _, err := cli.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	_, log = env.mustRun(t, exitOK, "-no-fleet")
	if got := summaries(log); got["a"] != "renewed" {
		t.Errorf("-no-fleet: %v\n%s", got, log)
	}
	if resp, err := cli.Get(t.Context(), key); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("-no-fleet shared the account key (%v)", err)
	}
}

// accountFleet shares before the first View that reads the fleet, retries
// after a failure (etcd not answering: View's error, so the run is
// Deferred), fails each certificate on an unusable record or local key,
// and shares only once per client once it has succeeded.
func TestAccountFleetSharesOnce(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	seal := writeSealKey(t, t.TempDir())
	c := fleetClient(t, cluster.Endpoints(), seal, "web-1")
	certs := []renew.Certificate{{Name: "a", Domains: []string{"a.example.test"}}}
	calls := 0
	var next error
	f := &accountFleet{Client: c, share: func(context.Context) error { calls++; return next }}

	next = fmt.Errorf("share: %w", fleet.ErrUnavailable)
	if _, err := f.View(t.Context(), certs); !errors.Is(err, fleet.ErrUnavailable) {
		t.Fatalf("View with etcd not answering the share: %v, want ErrUnavailable", err)
	}
	for _, bad := range []error{&fleet.RecordError{Key: "/renewkit/v1/account/x", Err: errors.New("garbage")}, &renew.LocalError{What: "account", Err: errors.New("mode 0644")}} {
		next = bad
		recs, err := f.View(t.Context(), certs)
		if err != nil || len(recs) != 1 || recs[0].Name != "a" || !errors.Is(recs[0].Err, bad) {
			t.Fatalf("View with share error %v: %+v, %v; want the certificate's record failing with it", bad, recs, err)
		}
	}
	next = nil
	for range 2 {
		recs, err := f.View(t.Context(), certs)
		if err != nil || len(recs) != 1 || recs[0].Err != nil {
			t.Fatalf("View after sharing: %+v, %v", recs, err)
		}
	}
	if calls != 4 {
		t.Errorf("share called %d times, want 4 (three failures, then once)", calls)
	}
}

// A node with an order of its own journaled (pending.key, left by a
// single-node or -no-fleet run killed after finalize) keeps its account
// key until that order is finished: the order belongs to that account, and
// resuming it with the fleet's would fail and order again. Once the order
// is gone, the node adopts the fleet's key.
func TestShareAccountWaitsForOwnOrders(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.Start(t, 1)
	seal := writeSealKey(t, t.TempDir())
	log := slog.New(slog.DiscardHandler)
	node := func() *config {
		dir := t.TempDir()
		return &config{DirectoryURL: "https://ca.example.test/directory", AccountDir: filepath.Join(dir, "account"), Root: filepath.Join(dir, "root"),
			Certificates: []certConfig{{Certificate: renew.Certificate{Name: "www", Domains: []string{"www.example.test"}}}}}
	}
	first, second := node(), node()
	if err := shareAccount(t.Context(), fleetClient(t, cluster.Endpoints(), seal, "web-1"), first, log); err != nil {
		t.Fatal(err)
	}
	ac := accountConfig(second, log)
	own, err := ac.AccountKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lineage := filepath.Join(second.Root, "www")
	if err := os.MkdirAll(lineage, 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := atomicfs.Open(lineage, atomicfs.Modes{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SavePendingKey([]byte("journaled order")); err != nil {
		t.Fatal(err)
	}
	c2 := fleetClient(t, cluster.Endpoints(), seal, "web-2")
	if err := shareAccount(t.Context(), c2, second, log); !errors.Is(err, errAdoptionPostponed) {
		t.Fatalf("share with an order journaled: %v, want it postponed", err)
	}
	if got, err := ac.AccountKey(t.Context()); err != nil || !bytes.Equal(got, own) {
		t.Fatalf("the node's account key changed while its own order was journaled (%v)", err)
	}
	if err := store.RemovePendingKey(); err != nil {
		t.Fatal(err)
	}
	if err := shareAccount(t.Context(), c2, second, log); err != nil {
		t.Fatal(err)
	}
	fc := accountConfig(first, log)
	fleetKey, err := fc.AccountKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ac.AccountKey(t.Context()); err != nil || !bytes.Equal(got, fleetKey) {
		t.Fatalf("after the order: the node's key is not the fleet's (%v)", err)
	}
}
