package crashtest_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/internal/etcdtest"
	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testpki"
)

// TestFleetBadInput puts records into etcd that no node writes: garbage, a
// value over the size limit, a generation whose key is sealed with a key
// the nodes do not have, a garbage order journal. For each, a node's run
// fails (exit 1) with an error naming the etcd key, and its installed
// certificate stays served, byte for byte. A generation for other names is
// not bad (the names of a lineage may change): the node neither installs it
// nor fails, and keeps serving its own certificate.
func TestFleetBadInput(t *testing.T) {
	t.Parallel()
	cl := etcdtest.Start(t, 1)
	cases := []fleetDamage{
		{"garbage meta record", func(t *testing.T, e *fleetEnv) string {
			return e.put(t, e.key("www", fleet.KindMeta), "{this is not a record")
		}, ""},
		{"oversized meta record", func(t *testing.T, e *fleetEnv) string {
			return e.put(t, e.key("www", fleet.KindMeta), `{"v":1,"pad":"`+strings.Repeat("x", fleet.MaxStateSize+1)+`"}`)
		}, ""},
		{"garbage order journal", func(t *testing.T, e *fleetEnv) string {
			return e.put(t, e.key("www", fleet.KindJournal), "\x00\x01garbage")
		}, ""},
		{"generation for other names", func(t *testing.T, e *fleetEnv) string {
			other := fleet.Lineage{Name: "www", Domains: []string{"other.example.test"}}
			e.publishForeign(t, e.sealKey, other)
			return e.key("www", fleet.KindMeta)
		}, "the fleet's current generation is for other names; not installing it"},
		{"generation sealed with another key", func(t *testing.T, e *fleetEnv) string {
			// Its records are authenticated with the other key too: the
			// meta record, read first, is refused.
			e.publishForeign(t, writeFleetSealKey(t, t.TempDir(), "other.key", 99), e.lineage("www"))
			return e.key("www", fleet.KindMeta)
		}, ""},
		{"bundle replaced alone", func(t *testing.T, e *fleetEnv) string {
			return e.put(t, e.bundleKey("www"), "{garbage")
		}, ""},
	}
	concurrently(t, workers(t), cases, func(c fleetDamage) string { return strings.ReplaceAll(c.name, " ", "-") }, func(t *testing.T, _ int, c fleetDamage) {
		e := newFleet(t, cl, fleetOptions{nodes: 1})
		n := e.nodes[0]
		n.mustRun(0)
		serial, err := n.servedSerial("www")
		if err != nil {
			t.Fatal(err)
		}
		before := snapshotFiles(n.lineage("www"))
		key := c.damage(t, e)
		r := n.run(nil)
		switch {
		case c.kept != "":
			// Not a bad record: the node keeps its own certificate (it
			// is not due) and says why it does not install the fleet's.
			if r.code != 0 || r.outcome("www") != "not_due" || !strings.Contains(r.stderr, c.kept) {
				t.Errorf("want exit 0, outcome not_due and %q, got %v", c.kept, r)
			}
		case r.code != 1 || r.outcome("www") != "failed":
			t.Errorf("want exit 1 and outcome failed, got %v", r)
		case !strings.Contains(r.stderr, key):
			t.Errorf("the error does not name the etcd key %s:\n%s", key, r.stderr)
		}
		if got := snapshotFiles(n.lineage("www")); !sameFiles(got, before) {
			t.Errorf("the served files changed")
		}
		if got, err := n.servedSerial("www"); err != nil || got != serial {
			t.Errorf("after the bad record the node serves %q (%v), want %s", got, err, serial)
		}
		if left := leftovers(n.lineage("www")); len(left) > 0 {
			t.Errorf("left behind %v", left)
		}
		if e.issued() != 1 {
			t.Errorf("the CA issued %d certificates, want only the first", e.issued())
		}
		t.Logf("%s: exit %d, error: %s", c.name, r.code, summaryError(r))
	})
}

// fleetDamage is a bad record of TestFleetBadInput.
type fleetDamage struct {
	name string
	// damage writes the bad record and returns the etcd key it names.
	damage func(t *testing.T, e *fleetEnv) string
	// kept, when set, says the record is not bad but not this node's
	// either: the run succeeds, keeps the installed certificate and logs
	// kept.
	kept string
}

// put writes value at key as is and returns key.
func (e *fleetEnv) put(t *testing.T, key, value string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.raw.Put(ctx, key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return key
}

// publishForeign publishes, as another node with the seal key in sealKey, a
// generation of lin (a self-signed certificate for lin's names) one number
// above the fleet's.
func (e *fleetEnv) publishForeign(t *testing.T, sealKey string, lin fleet.Lineage) {
	t.Helper()
	c, err := fleet.Dial(fleet.Config{
		Endpoints: e.etcd.Endpoints(), Prefix: e.prefix, Node: "intruder", SealKeyFile: sealKey,
		DialTimeout: 2 * time.Second, RequestTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, number := e.fleetSerial("www")
	leaf, err := testpki.SelfSigned(&x509.Certificate{
		SerialNumber: big.NewInt(0x5eed),
		Subject:      pkix.Name{CommonName: lin.Domains[0]},
		DNSNames:     lin.Domains,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := c.TryLockFenced(ctx, lin.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	g := fleet.Generation{
		Meta: fleet.Meta{
			Number: number + 1, Serial: served.Serial(leaf.Cert), Names: slices.Sorted(slices.Values(lin.Domains)),
			NotBefore: leaf.Cert.NotBefore, NotAfter: leaf.Cert.NotAfter,
		},
		CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM,
	}
	if err := c.PublishGeneration(ctx, l, lin, g); err != nil {
		t.Fatal(err)
	}
}

// summaryError is the error of the first certificate summary of a run.
func summaryError(r run) string {
	for _, rec := range r.summaries() {
		if s, ok := rec["error"].(string); ok {
			return s
		}
	}
	return ""
}
