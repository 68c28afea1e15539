package fleet

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testpki"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// The attacks of issue 22 against a real (embedded) etcd: whoever can write
// to the fleet's prefix without the seal key (a node's RBAC role, an etcd
// operator, a backup restore, the network on plain http) must not make a
// node install a certificate, key, number, backoff or account the fleet
// did not produce, nor an older one. Each attack is refused with an error
// naming the etcd key, and nothing is installed: the served certificate
// stays and no deploy hook runs. The "insider" variants re-authenticate
// the forged record with the seal key, to show the checks behind the MAC.

// attackEnv is a fleet of two nodes with generation 1 of www published by
// node 0 and installed on both.
type attackEnv struct {
	ca      *acmetest.CA
	nodes   []*fleetNode
	c       *Client // node 0's client, for raw etcd access
	cfg     Config  // the nodes' configuration
	domains []string
	serial  string // what both nodes serve
}

func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	cl := startCluster(t, 1)
	ca := acmetest.New(t, acmetest.Options{AlwaysValid: true})
	cfg := cl.config(t, "")
	e := &attackEnv{ca: ca, cfg: cfg, nodes: startNodes(t, 2, cfg, ca), domains: []string{"attack.test", "www.attack.test"}}
	e.c = e.nodes[0].r.Fleet.(*Client)
	for i, want := range []renew.Outcome{renew.Renewed, renew.Recovered} {
		if res := e.run(i); res.Outcome != want {
			t.Fatalf("setup: node %d: %v", i, res)
		}
	}
	e.serial = e.served(t, 0)
	if s := e.served(t, 1); s != e.serial {
		t.Fatalf("setup: the nodes serve %s and %s", e.serial, s)
	}
	return e
}

func (e *attackEnv) run(i int) renew.Result {
	return e.nodes[i].r.Run(context.Background(), e.nodes[i].cert(e.domains))[0]
}

func (e *attackEnv) served(t *testing.T, i int) string {
	t.Helper()
	snap, err := served.Check(filepath.Join(e.nodes[i].r.Root, "www"))
	if err != nil {
		t.Fatal(err)
	}
	return snap.Serial
}

func (e *attackEnv) get(t *testing.T, key string) string {
	t.Helper()
	resp, err := e.c.cli.Get(t.Context(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v %v", key, resp, err)
	}
	return string(resp.Kvs[0].Value)
}

func (e *attackEnv) put(t *testing.T, kv ...string) {
	t.Helper()
	var ops []clientv3.Op
	for i := 0; i < len(kv); i += 2 {
		ops = append(ops, clientv3.OpPut(kv[i], kv[i+1]))
	}
	if _, err := e.c.cli.Txn(t.Context()).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
}

// refused runs both nodes and checks that each fails naming key and saying
// want, serving what it served, its hook not run, and that the CA saw no
// new order.
func (e *attackEnv) refused(t *testing.T, key, want string) {
	t.Helper()
	orders := e.ca.Stats(e.domains...).Orders
	for i, n := range e.nodes {
		n.mu.Lock()
		reloads := len(n.reloads)
		n.mu.Unlock()
		before := e.served(t, i)
		res := e.run(i)
		if res.Outcome != renew.Failed || res.Err == nil || !strings.Contains(res.Err.Error(), key) || !strings.Contains(res.Err.Error(), want) {
			t.Errorf("node %d: %s %v; want failed naming %s and saying %q", i, res.Outcome, res.Err, key, want)
		}
		if s := e.served(t, i); s != before {
			t.Errorf("node %d now serves %s, was %s", i, s, before)
		}
		n.mu.Lock()
		if len(n.reloads) != reloads {
			t.Errorf("node %d ran its deploy hook for %v", i, n.reloads[reloads:])
		}
		n.mu.Unlock()
	}
	if got := e.ca.Stats(e.domains...).Orders; got != orders {
		t.Errorf("the CA saw %d new orders", got-orders)
	}
}

// editRecord returns the record inside an envelope value, edited by edit,
// in a new envelope: with the original MAC (a forgery without the seal
// key), or, with c set, authenticated by c (an insider).
func editRecord(t *testing.T, c *Client, key, kind, lineage, value string, edit func(rec map[string]any)) string {
	t.Helper()
	var env envelope
	if err := json.Unmarshal([]byte(value), &env); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(env.Rec, &rec); err != nil {
		t.Fatal(err)
	}
	edit(rec)
	body, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	env.Rec = body
	if c != nil {
		kid, mac := c.sealer.sign(c.keys.root, kind, lineage, key, body)
		env.KeyID, env.MAC = kid, hex.EncodeToString(mac)
	}
	return encode(env)
}

// Attack 1: a leaf for the fleet's own public key, issued by another CA,
// valid for 100 years, written over the fleet's current generation as the
// next one.
func TestAttackForgedLeaf(t *testing.T) {
	e := newAttackEnv(t)
	metaKey, bundleKey := e.c.keys.state("www", KindMeta), e.c.keys.bundle("www")
	metaV, bundleV := e.get(t, metaKey), e.get(t, bundleKey)
	var env envelope
	if err := json.Unmarshal([]byte(bundleV), &env); err != nil {
		t.Fatal(err)
	}
	var rec bundleRecord
	if err := json.Unmarshal(env.Rec, &rec); err != nil {
		t.Fatal(err)
	}
	leaf, err := parseLeaf([]byte(rec.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	evil, err := testpki.NewCA(&x509.Certificate{Subject: pkix.Name{CommonName: "Evil Root"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(200, 0, 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, forgedPEM, err := evil.Sign(&x509.Certificate{
		SerialNumber: big.NewInt(666), DNSNames: leaf.DNSNames,
		NotBefore: leaf.NotBefore, NotAfter: time.Now().AddDate(100, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	serial := fmt.Sprintf("%x", forged.SerialNumber)
	forge := func(m map[string]any) {
		m["number"], m["serial"] = 2, serial
		m["not_before"], m["not_after"] = forged.NotBefore.UTC().Format(time.RFC3339), forged.NotAfter.UTC().Format(time.RFC3339)
		m["cert_sha256"], m["chain_sha256"] = hexSHA256(string(forgedPEM)), hexSHA256(string(evil.PEM))
	}
	forgeBundle := func(m map[string]any) {
		forge(m["meta"].(map[string]any))
		m["cert"], m["chain"] = string(forgedPEM), string(evil.PEM)
	}
	e.put(t, metaKey, editRecord(t, nil, metaKey, string(KindMeta), "www", metaV, forge),
		bundleKey, editRecord(t, nil, bundleKey, kindBundle, "www", bundleV, forgeBundle))
	e.refused(t, metaKey, "MAC does not match")

	// An insider with the seal key: refused by the chain (the nodes know
	// the CA's roots) and, without roots, by the lifetime.
	e.put(t, metaKey, editRecord(t, e.c, metaKey, string(KindMeta), "www", metaV, forge),
		bundleKey, editRecord(t, e.c, bundleKey, kindBundle, "www", bundleV, forgeBundle))
	e.refused(t, "generation 2", "does not verify to a trusted root")
	for _, n := range e.nodes {
		n.r.Roots = nil
	}
	e.refused(t, "generation 2", "more than the 398 days")
}

// Attack 2: an older bundle replayed under a higher number (refused: the
// number is authenticated), and an older generation replayed as it was
// (refused: every node remembers the newer one it accepted, and the node
// that runs first republishes its own above it).
func TestAttackReplayedGeneration(t *testing.T) {
	e := newAttackEnv(t)
	metaKey, bundleKey := e.c.keys.state("www", KindMeta), e.c.keys.bundle("www")
	oldMeta, oldBundle := e.get(t, metaKey), e.get(t, bundleKey)
	c := e.nodes[0].cert(e.domains)
	c.Force = true
	if res := e.nodes[0].r.Run(t.Context(), c)[0]; res.Outcome != renew.Renewed {
		t.Fatalf("forced renewal: %v", res)
	}
	if res := e.run(1); res.Outcome != renew.Recovered {
		t.Fatalf("node 1 installs generation 2: %v", res)
	}
	s2 := e.served(t, 0)
	renumber := func(m map[string]any) { m["number"] = 3 }
	e.put(t, metaKey, editRecord(t, nil, metaKey, string(KindMeta), "www", oldMeta, renumber),
		bundleKey, editRecord(t, nil, bundleKey, kindBundle, "www", oldBundle, func(m map[string]any) { renumber(m["meta"].(map[string]any)) }))
	e.refused(t, metaKey, "MAC does not match")

	// Verbatim: authentic, but older than what both nodes accepted. A
	// node whose certificate outlives the replayed one republishes it
	// above (generation 3); else it refuses, naming the numbers. Either
	// way nothing older is installed.
	e.put(t, metaKey, oldMeta, bundleKey, oldBundle)
	for i, n := range e.nodes {
		n.mu.Lock()
		reloads := len(n.reloads)
		n.mu.Unlock()
		res := e.run(i)
		republished := res.Outcome.OK()
		refused := res.Outcome == renew.Failed && strings.Contains(res.Err.Error(), "older than generation 2 this node accepted")
		if !republished && !refused || e.served(t, i) != s2 {
			t.Errorf("node %d after the replay: %v, serving %s; want it to keep %s", i, res, e.served(t, i), s2)
		}
		n.mu.Lock()
		if len(n.reloads) != reloads {
			t.Errorf("node %d ran its deploy hook for %v", i, n.reloads[reloads:])
		}
		n.mu.Unlock()
		if republished {
			recs, err := e.c.View(t.Context(), []renew.Certificate{{Name: "www", Domains: e.domains}})
			if err != nil || recs[0].Current.Serial != s2 || recs[0].Current.Number != 3 {
				t.Errorf("the fleet after the replay: %+v %v; want %s republished as generation 3", recs, err, s2)
			}
		}
	}
}

// Attack 3: records moved between lineages, kinds and fleet prefixes.
func TestAttackMovedRecords(t *testing.T) {
	e := newAttackEnv(t)
	metaKey := e.c.keys.state("www", KindMeta)
	good := e.get(t, metaKey)
	// Another lineage's meta record (published by the fleet).
	api := renew.Certificate{Name: "api", Domains: []string{"api.attack.test"}}
	if res := e.nodes[0].r.Run(t.Context(), api)[0]; res.Outcome != renew.Renewed {
		t.Fatalf("api: %v", res)
	}
	e.put(t, metaKey, e.get(t, e.c.keys.state("api", KindMeta)))
	e.refused(t, metaKey, "moved from another key, lineage, kind or fleet prefix")
	// Another kind: the ARI... here the backoff record's key gets the meta.
	e.put(t, metaKey, good)
	backoffKey := e.c.keys.state("www", KindBackoff)
	e.put(t, backoffKey, good)
	e.refused(t, backoffKey, "MAC does not match")
	if _, err := e.c.cli.Delete(t.Context(), backoffKey); err != nil {
		t.Fatal(err)
	}
	// Another fleet (same seal key, another prefix).
	cfg := e.cfg
	cfg.Node = "other"
	cfg.Prefix = "/other-fleet/"
	other := dial(t, cfg)
	otherKey := other.keys.state("www", KindMeta)
	e.put(t, otherKey, good)
	if recs, err := other.View(t.Context(), []renew.Certificate{{Name: "www", Domains: e.domains}}); err != nil || recs[0].Err == nil || !strings.Contains(recs[0].Err.Error(), otherKey) {
		t.Errorf("a meta record copied to another fleet's prefix: %+v %v; want refused naming %s", recs, err, otherKey)
	}
}

// Attack 4: a backoff with not_before in 2999. Forged: refused; written
// by an insider: capped at 24 hours after its failure, like the local one.
func TestAttackBackoff2999(t *testing.T) {
	e := newAttackEnv(t)
	key := e.c.keys.state("www", KindBackoff)
	l, err := e.c.Lock(t.Context(), renew.Certificate{Name: "www", Domains: e.domains})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := l.Fail(t.Context(), renew.FleetBackoff{Failures: 1, RetryNotBefore: now.Add(time.Hour), LastError: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	good := e.get(t, key)
	far := func(m map[string]any) { m["not_before"] = "2999-01-01T00:00:00Z" }
	e.put(t, key, editRecord(t, nil, key, string(KindBackoff), "www", good, far))
	e.refused(t, key, "MAC does not match")
	e.put(t, key, editRecord(t, e.c, key, string(KindBackoff), "www", good, far))
	recs, err := e.c.View(t.Context(), []renew.Certificate{{Name: "www", Domains: e.domains}})
	if err != nil || recs[0].Err != nil {
		t.Fatal(recs, err)
	}
	if limit := time.Now().Add(MaxBackoffDelay); recs[0].Backoff.RetryNotBefore.After(limit) || recs[0].Backoff.RetryNotBefore.Year() == 2999 {
		t.Errorf("backoff read as not before %v, want at most %v", recs[0].Backoff.RetryNotBefore, limit)
	}
}

// Attack 5: a generation number of MaxInt64. Forged: refused; by an
// insider: refused as out of range, saying so.
func TestAttackMaxInt64(t *testing.T) {
	e := newAttackEnv(t)
	metaKey := e.c.keys.state("www", KindMeta)
	good := e.get(t, metaKey)
	huge := func(m map[string]any) { m["number"] = int64(math.MaxInt64) }
	e.put(t, metaKey, editRecord(t, nil, metaKey, string(KindMeta), "www", good, huge))
	e.refused(t, metaKey, "MAC does not match")
	e.put(t, metaKey, editRecord(t, e.c, metaKey, string(KindMeta), "www", good, huge))
	e.refused(t, metaKey, fmt.Sprintf("generation number %d, want 1 to %d", int64(math.MaxInt64), int64(MaxGeneration)))
}

// bytesKV counts the bytes of keys and values a Client receives.
type bytesKV struct {
	clientv3.KV
	n atomic.Int64
}

func (k *bytesKV) count(kvs []*mvccpb.KeyValue) {
	for _, kv := range kvs {
		k.n.Add(int64(len(kv.Key) + len(kv.Value)))
	}
}

func (k *bytesKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := k.KV.Get(ctx, key, opts...)
	if err == nil {
		k.count(resp.Kvs)
	}
	return resp, err
}

func (k *bytesKV) Txn(ctx context.Context) clientv3.Txn { return &bytesTxn{Txn: k.KV.Txn(ctx), k: k} }

type bytesTxn struct {
	clientv3.Txn
	k *bytesKV
}

func (t *bytesTxn) If(cs ...clientv3.Cmp) clientv3.Txn   { t.Txn = t.Txn.If(cs...); return t }
func (t *bytesTxn) Then(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Then(ops...); return t }
func (t *bytesTxn) Else(ops ...clientv3.Op) clientv3.Txn { t.Txn = t.Txn.Else(ops...); return t }
func (t *bytesTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := t.Txn.Commit()
	if err == nil {
		for _, r := range resp.Responses {
			t.k.count(r.GetResponseRange().GetKvs())
		}
	}
	return resp, err
}

// Attack 6: 600 junk records of 60 KB under the fleet's prefix (36 MB):
// a nothing-due run reads their names, never their values.
func TestAttackJunkRecords(t *testing.T) {
	e := newAttackEnv(t)
	junk := strings.Repeat("j", 60<<10)
	for i := 0; i < 600; i += 20 {
		var kv []string
		for j := i; j < i+20; j++ {
			kv = append(kv, e.c.keys.state(fmt.Sprintf("junk%04d", j), KindMeta), junk)
		}
		e.put(t, kv...)
	}
	e.put(t, e.c.keys.bundle("junk-bundle"), junk, e.c.keys.root+"state/www/x/meta", junk)
	c := e.nodes[1].r.Fleet.(*Client)
	kv := &bytesKV{KV: c.cli.KV}
	c.cli.KV = kv
	res := e.run(1)
	if res.Outcome != renew.NotDue {
		t.Fatalf("nothing-due run among junk records: %v", res)
	}
	// The listing (about 640 keys) and www's records: a few KB.
	if n := kv.n.Load(); n > 256<<10 {
		t.Errorf("a nothing-due run read %d bytes from etcd among 36 MB of junk, want at most 256 KB", n)
	}
	t.Logf("a nothing-due run among 600 junk records of 60 KB read %d bytes from etcd", kv.n.Load())
}

// Attack 7: lock-key churn (a lock key created and deleted in a loop by
// someone else) wakes no -serve run.
func TestAttackLockChurn(t *testing.T) {
	e := newAttackEnv(t)
	var runs atomic.Int64
	server := e.nodes[1]
	for len(server.reloaded) > 0 {
		<-server.reloaded // the setup's
	}
	server.r.Observer = observerFunc(func(renew.Result) { runs.Add(1) })
	server.r.ARIInterval = 0
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.r.Serve(ctx, server.cert(e.domains)) }()
	// Serve's first round runs www; wait for it (its Result).
	for runs.Load() == 0 {
		select {
		case err := <-serveErr:
			t.Fatalf("Serve: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	lockKey := e.c.keys.state("www", KindLock)
	for range 200 {
		e.put(t, lockKey, `{"v":1,"node":"mallory","since":"2026-01-01T00:00:00Z"}`)
		if _, err := e.c.cli.Delete(t.Context(), lockKey); err != nil {
			t.Fatal(err)
		}
	}
	// A real change after the churn: node 0 renews; the server installs
	// it (its watch delivered everything before).
	c := e.nodes[0].cert(e.domains)
	c.Force = true
	res := e.nodes[0].r.Run(t.Context(), c)[0]
	if res.Outcome != renew.Renewed {
		t.Fatalf("forced renewal: %v", res)
	}
	select {
	case s := <-server.reloaded:
		if s != res.Serial {
			t.Fatalf("server installed %s, want %s", s, res.Serial)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not install the new generation within 60s")
	}
	cancel()
	<-serveErr
	// Its first round and the publish (a run or two: the meta change, and
	// node 0's lock release when the server had found the lock held).
	if n := runs.Load(); n > 3 {
		t.Errorf("%d runs on the serving node over 200 lock churns and one publish, want at most 3", n)
	}
	t.Logf("%d runs on the serving node over 200 lock churns and one publish", runs.Load())
}

type observerFunc func(renew.Result)

func (f observerFunc) Finished(r renew.Result) { f(r) }

// Plain http:// endpoints without TLS: Dial warns.
func TestPlainHTTPWarning(t *testing.T) {
	var buf bytes.Buffer
	cfg := startCluster(t, 1).config(t, "node-a")
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	dial(t, cfg)
	if out := buf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "plain http://") || !strings.Contains(out, cfg.Endpoints[0]) {
		t.Errorf("Dial with plain http endpoints logged %q, want a warning naming them", out)
	}
}
