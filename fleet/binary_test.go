package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/etcdtest"
	"github.com/renewkit/renewkit/lockfile"
)

// TestEtcdBinary runs this package's calls (lease, lock transaction, fenced
// writes, range read, watch) against a real etcd server binary: the one named
// by RENEWKIT_ETCD_BINARY, else "etcd" on PATH; it skips without one. CI
// unpacks Debian 12's etcd-server (3.4) for it, the oldest server supported.
func TestEtcdBinary(t *testing.T) {
	bin := os.Getenv("RENEWKIT_ETCD_BINARY")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			t.Skip("no etcd binary on PATH and RENEWKIT_ETCD_BINARY not set")
		}
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", bin, err, out)
	}
	t.Logf("%s", strings.SplitN(string(out), "\n", 2)[0])

	ports := etcdtest.FreePorts(t, 2)
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cmd := exec.Command(bin,
		"--name", "m0", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "m0="+peer, "--heartbeat-interval", "25", "--election-timeout", "250",
		"--logger", "zap", "--log-level", "error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	a, b := twoNodes(t, Config{
		Endpoints: []string{client}, Prefix: "/compat/", LockTTL: 10 * time.Second,
		RequestTimeout: 2 * time.Second, SealKeyFile: writeSealKey(t, t.TempDir(), 1),
	})
	ctx := t.Context()
	var snap *Snapshot
	waitOK(t, "first read", 30*time.Second, func() error {
		snap, err = a.ReadStates(ctx, www)
		return err
	})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := a.watch(wctx, snap.Revision)

	la, err := a.TryLockFenced(ctx, www.Name)
	if err != nil {
		t.Fatal(err)
	}
	var he *lockfile.HeldError
	if _, err := tryLock(ctx, b, www.Name); !errors.As(err, &he) || he.Node != "node-a" || !errors.Is(err, lockfile.ErrLocked) {
		t.Fatalf("contention: %v", err)
	}
	if err := a.PutJournal(ctx, la, www, Journal{OrderURL: "u", Names: www.Domains, KeyPEM: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if err := a.PublishGeneration(ctx, la, www, testGeneration(1, "v34")); err != nil {
		t.Fatal(err)
	}
	if ch := <-changes; ch.Err != nil || ch.Kind != KindLock {
		t.Errorf("first change %+v, want the lock", ch)
	}
	// The holder's lease ends; the next holder fences it out.
	if _, err := a.cli.Revoke(ctx, a.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	lb := waitLock(t, b, www.Name, 10*time.Second)
	if err := a.PutBackoff(ctx, la, Backoff{Failures: 1}); !errors.Is(err, ErrFenced) {
		t.Errorf("stale write: %v, want ErrFenced", err)
	}
	if err := b.PublishGeneration(ctx, lb, www, testGeneration(2, "v34b")); err != nil {
		t.Fatal(err)
	}
	g, err := a.ReadGeneration(ctx, www)
	if err != nil || g.Serial != "v34b" || string(g.KeyPEM) != string(testGeneration(2, "v34b").KeyPEM) {
		t.Fatalf("read back: %v %+v", err, g)
	}
	snap, err = a.ReadStates(ctx, www)
	if err != nil || snap.States[www.Name].Holder != "node-b" || snap.States[www.Name].Journal != nil {
		t.Fatalf("states: %v %+v", err, snap.States[www.Name])
	}
}
