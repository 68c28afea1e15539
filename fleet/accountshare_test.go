package fleet

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// accountOnlyIssuer is an Issuer whose orders fail before reaching a CA,
// with the shared account of an acmeissuer account directory: what the
// Renewer's shared-account protocol needs, and nothing else.
type accountOnlyIssuer struct{ cfg *acmeissuer.Config }

var errNoCA = errors.New("no CA in this test")

func (i accountOnlyIssuer) Issue(context.Context, renew.IssueRequest, func(context.Context, renew.InFlight) error) (*renew.Issued, error) {
	return nil, errNoCA
}

func (i accountOnlyIssuer) Resume(context.Context, renew.InFlight) (*renew.Issued, error) {
	return nil, errNoCA
}

func (i accountOnlyIssuer) SharedAccount() (string, renew.AccountStore) {
	return i.cfg.DirectoryURL, i.cfg
}

// accountNode is a node of the shared-account tests: its root, account
// directory and fleet client.
type accountNode struct {
	root string
	ac   *acmeissuer.Config
	c    *Client
}

func newAccountNode(t *testing.T, cfg Config, name string) *accountNode {
	dir := t.TempDir()
	cfg.Node = name
	return &accountNode{
		root: filepath.Join(dir, "root"),
		ac:   &acmeissuer.Config{DirectoryURL: testDirectory, AccountDir: filepath.Join(dir, "account")},
		c:    dial(t, cfg),
	}
}

// run is one run of a new Renewer (a new process) of the node over one
// certificate; its result.
func (n *accountNode) run(t *testing.T) renew.Result {
	t.Helper()
	r := &renew.Renewer{Root: n.root, Issuer: accountOnlyIssuer{n.ac}, Fleet: n.c}
	return r.Run(t.Context(), renew.Certificate{Name: "www", Domains: []string{"www.example.com"}})[0]
}

func (n *accountNode) key(t *testing.T) []byte {
	t.Helper()
	k, err := n.ac.AccountKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A library user of fleet mode gets the shared account without a CLI: the
// Renewer shares the first node's key, the second adopts it, and the
// epoch each accepted is remembered in its account directory.
func TestRenewerSharesAccount(t *testing.T) {
	cfg := startCluster(t, 1).config(t, "")
	a, b := newAccountNode(t, cfg, "node-a"), newAccountNode(t, cfg, "node-b")
	a.run(t)
	bOwn := b.key(t)
	b.run(t)
	if !bytes.Equal(a.key(t), b.key(t)) || bytes.Equal(bOwn, b.key(t)) {
		t.Fatal("node-b did not adopt node-a's account key")
	}
	for _, n := range []*accountNode{a, b} {
		if e, err := n.ac.FleetEpoch(t.Context()); err != nil || e != 1 {
			t.Errorf("remembered epoch %d, %v; want 1", e, err)
		}
	}
}

// A node with an order of its own journaled (a pending key, left by a
// single-node run killed after finalize) keeps its account key until that
// order is finished: the order belongs to that account, and resuming it
// with the fleet's would fail and order again. Once the order is gone, the
// node adopts the fleet's key.
func TestRenewerAccountWaitsForOwnOrders(t *testing.T) {
	cfg := startCluster(t, 1).config(t, "")
	a, b := newAccountNode(t, cfg, "node-a"), newAccountNode(t, cfg, "node-b")
	a.run(t)
	own := b.key(t)
	lineage := filepath.Join(b.root, "www")
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
	b.run(t)
	if !bytes.Equal(b.key(t), own) {
		t.Fatal("the node's account key changed while its own order was journaled")
	}
	if err := store.RemovePendingKey(); err != nil {
		t.Fatal(err)
	}
	b.run(t)
	if !bytes.Equal(b.key(t), a.key(t)) {
		t.Fatal("after the order: the node's key is not the fleet's")
	}
}

// After the fleet's account was changed (record deleted, a node shares a
// new key with a higher epoch, the others adopt it), replaying the old
// account record (authentic: the fleet wrote it) is refused by every node
// that accepted the newer epoch: nothing adopted, the run fails naming the
// record.
func TestRenewerRefusesReplayedAccount(t *testing.T) {
	cfg := startCluster(t, 1).config(t, "")
	a, b := newAccountNode(t, cfg, "node-a"), newAccountNode(t, cfg, "node-b")
	a.run(t)
	b.run(t)
	ctx := t.Context()
	key := a.c.keys.account(testDirectory)
	old, err := a.c.cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// The documented change of account: a new key on node-a, the record
	// deleted, node-a first.
	if err := os.Remove(filepath.Join(a.ac.AccountDir, "account.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.cli.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	a.run(t)
	b.run(t)
	newKey := a.key(t)
	if !bytes.Equal(b.key(t), newKey) {
		t.Fatal("node-b did not adopt the changed account")
	}
	if e, _ := b.ac.FleetEpoch(ctx); e != 2 {
		t.Fatalf("node-b remembers epoch %d, want 2", e)
	}
	// The replay.
	if _, err := a.c.cli.Put(ctx, key, string(old.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	res := b.run(t)
	if res.Outcome != renew.Failed || res.Err == nil || !strings.Contains(res.Err.Error(), key) || !strings.Contains(res.Err.Error(), "older than epoch 2") {
		t.Fatalf("run over a replayed account record: %s %v; want failed naming %s", res.Outcome, res.Err, key)
	}
	if !bytes.Equal(b.key(t), newKey) {
		t.Fatal("node-b adopted the replayed account key")
	}
}
