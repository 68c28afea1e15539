package fleet

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/renewkit/renewkit/internal/etcdtest"
	"github.com/renewkit/renewkit/internal/testpki"
	"github.com/renewkit/renewkit/lockfile"
	"github.com/renewkit/renewkit/renew"
)

// wwwCert is the renew form of lineage www; its names differ from www's in
// case and a trailing dot only, which renew does not count.
var wwwCert = renew.Certificate{Name: "www", Domains: []string{"WWW.example.com.", "example.com"}}

// testLeaf issues a certificate for names, returning the fleet record of
// generation n that publishes it.
func testLeaf(t *testing.T, n uint64, names ...string) renew.FleetBundle {
	t.Helper()
	ca, err := testpki.NewCA(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(&x509.Certificate{DNSNames: names})
	if err != nil {
		t.Fatal(err)
	}
	return renew.FleetBundle{
		FleetGeneration: renew.FleetGeneration{
			Number: n, Serial: leaf.Cert.SerialNumber.Text(16),
			NotBefore: leaf.Cert.NotBefore, NotAfter: leaf.Cert.NotAfter,
		},
		Cert: leaf.CertPEM, Chain: ca.PEM, Key: leaf.KeyPEM,
	}
}

// view returns the fleet record of one certificate, failing on an error.
func view(t *testing.T, c *Client, cert renew.Certificate) renew.FleetView {
	t.Helper()
	recs, err := c.View(t.Context(), []renew.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Name != cert.Name {
		t.Fatalf("View of %s: %+v", cert.Name, recs)
	}
	return recs[0]
}

// Every method of the adapter, in the order of a renewal: the records
// written through the lock are what View, Record and Current read back.
func TestFleetAdapterRenewal(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	since := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return since }

	if r := view(t, b, wwwCert); r.Current.Number != 0 || r.Err != nil || r.Order != nil || r.Holder != "" {
		t.Fatalf("empty fleet: %+v", r)
	}
	if r, err := b.Current(ctx, wwwCert); err != nil || r.Number != 0 || r.Cert != nil {
		t.Fatalf("Current of an empty fleet: %+v %v, want generation 0", r, err)
	}

	lock, err := a.Lock(ctx, wwwCert)
	if err != nil {
		t.Fatal(err)
	}
	if r := view(t, b, wwwCert); r.Holder != "node-a" || !r.HolderSince.Equal(since) {
		t.Errorf("holder %q since %v, want node-a since %v", r.Holder, r.HolderSince, since)
	}
	order := renew.FleetOrder{OrderURL: "https://ca.test/order/7", Domains: []string{"example.com", "www.example.com"}, Created: since, Key: []byte("order key")}
	if err := lock.Journal(ctx, order); err != nil {
		t.Fatal(err)
	}
	rec, err := lock.Record(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Order == nil || rec.Order.OrderURL != order.OrderURL || !rec.Order.Created.Equal(since) || rec.Order.Node != "node-a" || string(rec.Order.Key) != "order key" {
		t.Errorf("Record after Journal: %+v (order %+v), want the order and its key", rec, rec.Order)
	}
	// View shows the order but never its key.
	if r := view(t, b, wwwCert); r.Order == nil || r.Order.OrderURL != order.OrderURL || r.Order.Key != nil {
		t.Errorf("View after Journal: %+v, want the order without its key", r)
	}
	if err := lock.DropOrder(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, err := lock.Record(ctx); err != nil || rec.Order != nil {
		t.Errorf("Record after DropOrder: %+v %v, want no order", rec, err)
	}

	retry := since.Add(time.Hour)
	if err := lock.Fail(ctx, renew.FleetBackoff{Failures: 3, RetryNotBefore: retry, LastError: "acme: rate limited", FailedConfig: "cfg1"}); err != nil {
		t.Fatal(err)
	}
	if r := view(t, b, wwwCert).Backoff; r.Failures != 3 || !r.RetryNotBefore.Equal(retry) || r.LastError != "acme: rate limited" || r.FailedConfig != "cfg1" {
		t.Errorf("View after Fail: %+v", r)
	}
	// The ARI window one node fetched, as every node reads it.
	w := renew.FleetARI{Serial: "0a1b", Start: since.Add(24 * time.Hour), End: since.Add(48 * time.Hour), ExplanationURL: "https://ca.test/why", NextFetch: since.Add(6 * time.Hour)}
	if err := lock.PutARI(ctx, w); err != nil {
		t.Fatal(err)
	}
	rec, err = lock.Record(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for what, r := range map[string]renew.FleetARI{"View": view(t, b, wwwCert).ARI, "Record": rec.ARI} {
		if r.Serial != w.Serial || !r.Start.Equal(w.Start) || !r.End.Equal(w.End) || r.ExplanationURL != w.ExplanationURL || !r.NextFetch.Equal(w.NextFetch) {
			t.Errorf("%s after PutARI: %+v, want the window %+v", what, r, w)
		}
	}
	st, err := b.ReadStates(ctx, lineageOf(wwwCert))
	if err != nil {
		t.Fatal(err)
	}
	if a := st.States["www"].ARI; a == nil || a.Serial != w.Serial || !a.NextCheck.Equal(w.NextFetch) || !a.Fetched.Equal(since) {
		t.Errorf("the ARI record: %+v", a)
	}

	if err := lock.Journal(ctx, order); err != nil {
		t.Fatal(err)
	}
	g := testLeaf(t, 1, "www.example.com", "example.com")
	if err := lock.Publish(ctx, g); err != nil {
		t.Fatal(err)
	}
	r := view(t, b, wwwCert)
	if r.Err != nil || r.Current.Number != 1 || r.Current.Serial != g.Serial || !r.Current.NotAfter.Equal(g.NotAfter) || r.Current.Publisher != "node-a" || !r.Current.Published.Equal(since) {
		t.Errorf("View after Publish: %+v", r)
	}
	if r.Order != nil || r.Backoff.Failures != 0 {
		t.Errorf("View after Publish: order %v, failures %d; want the journal and backoff cleared", r.Order, r.Backoff.Failures)
	}
	cur, err := b.Current(ctx, wwwCert)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Number != 1 || cur.Serial != g.Serial || !bytes.Equal(cur.Cert, g.Cert) || !bytes.Equal(cur.Chain, g.Chain) || !bytes.Equal(cur.Key, g.Key) {
		t.Errorf("Current after Publish: %+v", cur)
	}
	// The fleet's generation never goes back, and a certificate for other
	// names is not published.
	if err := lock.Publish(ctx, testLeaf(t, 1, "www.example.com", "example.com")); !errors.Is(err, ErrNotNewer) {
		t.Errorf("Publish of generation 1 again: %v, want ErrNotNewer", err)
	}
	if err := lock.Publish(ctx, testLeaf(t, 2, "evil.example.net")); err == nil || !strings.Contains(err.Error(), "record for names") {
		t.Errorf("Publish of another site's certificate: %v, want refused", err)
	}
	// The meta record describes the certificate it comes with.
	wrong := testLeaf(t, 2, "www.example.com", "example.com")
	wrong.Serial = "ff"
	if err := lock.Publish(ctx, wrong); err == nil || !strings.Contains(err.Error(), "but the certificate's are") {
		t.Errorf("Publish with another serial than the leaf's: %v, want refused", err)
	}
	if err := lock.Publish(ctx, renew.FleetBundle{FleetGeneration: renew.FleetGeneration{Number: 2}, Cert: []byte("not PEM"), Key: g.Key}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("Publish without a certificate: %v, want refused", err)
	}
	if r := view(t, b, wwwCert); r.Current.Number != 1 || r.Current.Serial != g.Serial {
		t.Errorf("refused publishes changed the fleet: %+v", r)
	}
	// Serial and validity left zero are the leaf's.
	g2 := testLeaf(t, 2, "example.com", "www.example.com")
	serial, notAfter := g2.Serial, g2.NotAfter
	g2.Serial, g2.NotBefore, g2.NotAfter = "", time.Time{}, time.Time{}
	if err := lock.Publish(ctx, g2); err != nil {
		t.Fatal(err)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	if r := view(t, b, wwwCert); r.Holder != "" || r.Current.Number != 2 || r.Current.Serial != serial || !r.Current.NotAfter.Equal(notAfter) {
		t.Errorf("after Unlock: %+v, want no holder, generation 2 with the leaf's serial %s", r, serial)
	}
}

// A held lock names its holder with lockfile's HeldError (the one HeldError
// of the module), so that renew (which does not import fleet) reports the
// node and the etcd key.
func TestFleetAdapterHeldError(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	since := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return since }
	lock, err := a.Lock(ctx, wwwCert)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	_, err = b.Lock(ctx, wwwCert)
	var lh *lockfile.HeldError
	if !errors.Is(err, lockfile.ErrLocked) || !errors.As(err, &lh) {
		t.Fatalf("Lock of a held lineage: %v, want lockfile.ErrLocked and a *lockfile.HeldError", err)
	}
	key := b.keys.state("www", KindLock)
	if lh.Node != "node-a" || !lh.Since.Equal(since) || lh.Path != key || lh.PID != 0 {
		t.Errorf("lockfile.HeldError %+v, want node-a since %v at %s", lh, since, key)
	}
	if !strings.Contains(lh.Error(), "node-a") || !strings.Contains(lh.Error(), key) {
		t.Errorf("lockfile.HeldError message %q does not name the node and key", lh)
	}
}

// A holder that lost its lock (lease expired, lock key deleted) writes
// nothing through the adapter: every write is refused with ErrFenced and
// etcd's revision does not move.
func TestFleetAdapterFenced(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, c *Client)
	}{
		{"lease revoked", func(t *testing.T, c *Client) {
			if _, err := c.cli.Revoke(t.Context(), c.sess.Lease()); err != nil {
				t.Fatal(err)
			}
		}},
		{"lock key deleted", func(t *testing.T, c *Client) {
			if _, err := c.cli.Delete(t.Context(), c.keys.state("www", KindLock)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
			ctx := t.Context()
			lock, err := a.Lock(ctx, wwwCert)
			if err != nil {
				t.Fatal(err)
			}
			if err := lock.Publish(ctx, testLeaf(t, 1, "www.example.com", "example.com")); err != nil {
				t.Fatal(err)
			}
			tc.lose(t, a)
			before, err := a.cli.Get(ctx, a.keys.root, clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			order := renew.FleetOrder{OrderURL: "https://ca.test/order/stale", Domains: wwwCert.Domains, Key: []byte("stale key")}
			for name, write := range map[string]func() error{
				"publish":    func() error { return lock.Publish(ctx, testLeaf(t, 2, "www.example.com", "example.com")) },
				"journal":    func() error { return lock.Journal(ctx, order) },
				"fail":       func() error { return lock.Fail(ctx, renew.FleetBackoff{Failures: 9}) },
				"drop order": func() error { return lock.DropOrder(ctx) },
				"ari":        func() error { return lock.PutARI(ctx, renew.FleetARI{Serial: "ff", NextFetch: time.Now()}) },
			} {
				if err := write(); !errors.Is(err, ErrFenced) {
					t.Errorf("%s after the lock was lost: %v, want ErrFenced", name, err)
				}
			}
			after, err := a.cli.Get(ctx, a.keys.root, clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			if after.Header.Revision != before.Header.Revision {
				t.Errorf("etcd revision went from %d to %d: a fenced write changed something", before.Header.Revision, after.Header.Revision)
			}
			if r := view(t, a, wwwCert); r.Current.Number != 1 || r.Order != nil || r.Backoff.Failures != 0 {
				t.Errorf("after the refused writes: %+v, want generation 1 only", r)
			}
		})
	}
}

// Bad records in etcd: View and Record (under the lock) confine each to
// its lineage's Err naming the etcd key, Current reports a bad bundle as
// an error matching renew.ErrFleetRecord that names the key.
func TestFleetAdapterBadRecords(t *testing.T) {
	cl := startCluster(t, 1)
	cfg := cl.config(t, "node-a")
	a := dial(t, cfg)
	otherCfg := cfg
	otherCfg.SealKeyFile = writeSealKey(t, t.TempDir(), 99)
	other := dial(t, otherCfg)
	ctx := t.Context()
	api := renew.Certificate{Name: "api", Domains: []string{"api.example.com"}}

	publish := func(c *Client, cert renew.Certificate, g renew.FleetBundle) {
		t.Helper()
		lock, err := c.Lock(ctx, cert)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Unlock()
		if err := lock.Publish(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	publish(a, api, testLeaf(t, 1, "api.example.com"))
	publish(a, wwwCert, testLeaf(t, 1, "www.example.com", "example.com"))
	// A journal sealed with a key node-a does not have.
	lock, err := other.Lock(ctx, wwwCert)
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Journal(ctx, renew.FleetOrder{OrderURL: "https://ca.test/o/1", Domains: wwwCert.Domains, Key: []byte("secret order key")}); err != nil {
		t.Fatal(err)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	raw := func(key string) string {
		resp, err := a.cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v %v", key, resp, err)
		}
		return string(resp.Kvs[0].Value)
	}
	metaKey, journalKey := a.keys.state("www", KindMeta), a.keys.state("www", KindJournal)
	backoffKey, bundleKey := a.keys.state("www", KindBackoff), a.keys.bundle("www")
	goodMeta, goodBundle, apiMeta := raw(metaKey), raw(bundleKey), raw(a.keys.state("api", KindMeta))

	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"journal sealed with another key", journalKey, "", "not among this node's seal keys"},
		{"garbage meta", metaKey, "\x00\xffgarbage", "not a JSON record"},
		{"meta of another lineage", metaKey, apiMeta, `lineage "api"`},
		{"oversized backoff", backoffKey, `{"v":1,"pad":"` + strings.Repeat("a", MaxStateSize) + `"}`, "more than the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.value != "" {
				if _, err := a.cli.Put(ctx, tc.key, tc.value); err != nil {
					t.Fatal(err)
				}
			}
			// Each case has one bad record: the good meta comes back, the
			// others go.
			defer func() {
				restore := clientv3.OpDelete(tc.key)
				if tc.key == metaKey {
					restore = clientv3.OpPut(metaKey, goodMeta)
				}
				if _, err := a.cli.Do(context.WithoutCancel(ctx), restore); err != nil {
					t.Fatal(err)
				}
			}()
			recs, err := a.View(ctx, []renew.Certificate{api, wwwCert})
			if err != nil {
				t.Fatal(err)
			}
			if recs[0].Err != nil || recs[0].Current.Number != 1 {
				t.Errorf("the good lineage suffers from the bad one: %+v", recs[0])
			}
			checkRecordErr(t, "View", recs[1].Err, tc.key, tc.want)
			if recs[1].Order != nil && recs[1].Order.Key != nil {
				t.Error("View returned key material")
			}
			// Under the lock too.
			lock, err := a.Lock(ctx, wwwCert)
			if err != nil {
				t.Fatal(err)
			}
			defer lock.Unlock()
			rec, err := lock.Record(ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkRecordErr(t, "Record", rec.Err, tc.key, tc.want)
		})
	}

	// A bad bundle is Current's error (renew.ErrFleetRecord), never installed.
	for _, tc := range []struct{ name, value, want string }{
		{"garbage", "{", "not a JSON record"},
		{"certificate not for the record's names", strings.Replace(goodBundle, `"www.example.com"`, `"evil.example.net"`, 1), "the certificate is for names"},
		{"certificate not of the record's serial", strings.Replace(goodBundle, `"serial":"`, `"serial":"0`, 2), "the certificate's serial is"},
		{"oversized", `{"v":1,"pad":"` + strings.Repeat("a", MaxBundleSize) + `"}`, "more than the limit"},
	} {
		t.Run("bundle "+tc.name, func(t *testing.T) {
			if _, err := a.cli.Put(ctx, bundleKey, tc.value); err != nil {
				t.Fatal(err)
			}
			r, err := a.Current(ctx, wwwCert)
			if !errors.Is(err, renew.ErrFleetRecord) {
				t.Fatalf("Current: %v, want the bad bundle refused with renew.ErrFleetRecord", err)
			}
			checkRecordErr(t, "Current", err, bundleKey, tc.want)
			if r.Number != 0 || r.Cert != nil || r.Key != nil {
				t.Errorf("Current of a bad bundle filled %+v", r)
			}
		})
	}
	if _, err := a.cli.Put(ctx, bundleKey, goodBundle); err != nil {
		t.Fatal(err)
	}
	_, err = other.Current(ctx, wwwCert)
	if !errors.Is(err, renew.ErrFleetRecord) {
		t.Fatalf("Current with another seal key: %v, want renew.ErrFleetRecord", err)
	}
	checkRecordErr(t, "Current with another seal key", err, bundleKey, "not among this node's seal keys")
}

// The lineage's names are changed (on every node): the fleet's records
// for the old names are not bad records but reported with their names, so
// that renew replaces them; the generation for the new names is published
// over them with the next number.
func TestFleetAdapterNamesChanged(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	lock, err := a.Lock(ctx, wwwCert)
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Publish(ctx, testLeaf(t, 1, "www.example.com", "example.com")); err != nil {
		t.Fatal(err)
	}
	if err := lock.Journal(ctx, renew.FleetOrder{OrderURL: "https://ca.test/o/1", Domains: wwwCert.Domains, Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	oldNames := []string{"example.com", "www.example.com"}
	grown := renew.Certificate{Name: "www", Domains: []string{"www.example.com", "example.com", "api.example.com"}}
	r := view(t, b, grown)
	if r.Err != nil || r.Current.Number != 1 || !slices.Equal(r.Current.Domains, oldNames) || r.Order == nil || !slices.Equal(sortedNames(r.Order.Domains), oldNames) {
		t.Fatalf("View with the new names: %+v", r)
	}
	cur, err := b.Current(ctx, grown)
	if err != nil || cur.Number != 1 || !slices.Equal(cur.Domains, oldNames) || cur.Cert == nil {
		t.Fatalf("Current with the new names: %+v, %v", cur, err)
	}
	lock, err = b.Lock(ctx, grown)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	if rec, err := lock.Record(ctx); err != nil || rec.Err != nil || rec.Order == nil || rec.Order.Key == nil {
		t.Fatalf("Record with the new names: %+v, %v", rec, err)
	}
	if err := lock.DropOrder(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lock.Publish(ctx, testLeaf(t, 2, grown.Domains...)); err != nil {
		t.Fatalf("publish for the new names over the old names': %v", err)
	}
	if r := view(t, a, grown); r.Err != nil || r.Current.Number != 2 || !slices.Equal(r.Current.Domains, sortedNames(grown.Domains)) || r.Order != nil {
		t.Fatalf("View after: %+v", r)
	}
}

func checkRecordErr(t *testing.T, what string, err error, key, want string) {
	t.Helper()
	var re *RecordError
	if !errors.Is(err, ErrRecord) || !errors.As(err, &re) || re.Key != key {
		t.Errorf("%s: %v, want a RecordError for %s", what, err, key)
		return
	}
	if msg := err.Error(); !strings.Contains(msg, key) || !strings.Contains(msg, want) || strings.Contains(msg, "secret") {
		t.Errorf("%s: %q does not name the key and say %q (or shows key material)", what, msg, want)
	}
}

// Watch sends the names of changed lineages: once per revision, not for
// taking a lock, and for releasing one; it ends with its context.
func TestFleetAdapterWatch(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	// A change before Watch is called is not sent.
	if lock, err := a.Lock(ctx, wwwCert); err != nil {
		t.Fatal(err)
	} else if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	names := b.Watch(wctx)

	lock, err := a.Lock(ctx, wwwCert) // not sent
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Journal(ctx, renew.FleetOrder{OrderURL: "https://ca.test/o/1", Domains: wwwCert.Domains, Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	// One name for the meta put and the journal delete of one revision.
	if err := lock.Publish(ctx, testLeaf(t, 1, "www.example.com", "example.com")); err != nil {
		t.Fatal(err)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	api := renew.Certificate{Name: "api", Domains: []string{"api.example.com"}}
	apiLock, err := a.Lock(ctx, api)
	if err != nil {
		t.Fatal(err)
	}
	if err := apiLock.Fail(ctx, renew.FleetBackoff{Failures: 1}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for name := range names {
		got = append(got, name)
		if name == "api" {
			break
		}
	}
	if want := "www www www api"; strings.Join(got, " ") != want {
		t.Errorf("names %q, want %q (journal, publish, unlock, then api's backoff)", strings.Join(got, " "), want)
	}
	cancel()
	for name := range names {
		if name != "api" { // api's unlock may be in flight
			t.Errorf("name %q after the context ended", name)
		}
	}
}

// Watch does not send the release of a lock this client held: a node's
// own run ending (a failure here, say) must not wake its own Serve to run
// the lineage again at once, in a loop. Another node's release is sent.
func TestFleetAdapterWatchSkipsOwnLock(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	names := a.Watch(wctx)
	lockUnlock := func(c *Client, cert renew.Certificate) {
		t.Helper()
		lock, err := c.Lock(ctx, cert)
		if err != nil {
			t.Fatal(err)
		}
		if err := lock.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
	lockUnlock(a, wwwCert) // not sent: a's own
	api := renew.Certificate{Name: "api", Domains: []string{"api.example.com"}}
	lockUnlock(b, api) // sent: another node's release
	lock, err := a.Lock(ctx, wwwCert)
	if err != nil {
		t.Fatal(err)
	}
	leaf := testLeaf(t, 1, "www.example.com", "example.com")
	if err := lock.Publish(ctx, leaf); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ari := renew.FleetARI{Serial: leaf.Serial, Start: now.Add(time.Hour), End: now.Add(2 * time.Hour), NextFetch: now.Add(time.Hour)}
	if err := lock.PutARI(ctx, ari); err != nil { // not sent: every node reads it with its next View
		t.Fatal(err)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	lockUnlock(b, api) // sent
	var got []string
	for name := range names {
		got = append(got, name)
		if len(got) == 3 {
			break
		}
	}
	if want := "api www api"; strings.Join(got, " ") != want {
		t.Errorf("names %q, want %q (b's release of api, a's publish of www, b's release of api; not a's ARI window)", strings.Join(got, " "), want)
	}
}

// Without etcd, View, Current and Lock fail with ErrUnavailable (renew
// defers), and Watch's channel is closed at once.
func TestFleetAdapterUnavailable(t *testing.T) {
	c := dial(t, Config{
		Endpoints: []string{"http://127.0.0.1:" + strconv.Itoa(etcdtest.FreePort(t))}, Node: "lonely",
		RequestTimeout: 300 * time.Millisecond, DialTimeout: 300 * time.Millisecond,
		SealKeyFile: writeSealKey(t, t.TempDir(), 1),
	})
	ctx := t.Context()
	if _, err := c.View(ctx, []renew.Certificate{wwwCert}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("View: %v, want ErrUnavailable", err)
	}
	if _, err := c.Current(ctx, wwwCert); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Current: %v, want ErrUnavailable", err)
	}
	if _, err := c.Lock(ctx, wwwCert); !errors.Is(err, ErrUnavailable) || errors.Is(err, lockfile.ErrLocked) {
		t.Errorf("Lock: %v, want ErrUnavailable", err)
	}
	if _, ok := <-c.Watch(ctx); ok {
		t.Error("Watch without etcd sent a name")
	}
}

// countingKV counts the KV calls a Client makes.
type countingKV struct {
	clientv3.KV
	gets, others atomic.Int64
}

func (k *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	k.gets.Add(1)
	return k.KV.Get(ctx, key, opts...)
}

func (k *countingKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	k.others.Add(1)
	return k.KV.Put(ctx, key, val, opts...)
}

func (k *countingKV) Txn(ctx context.Context) clientv3.Txn {
	k.others.Add(1)
	return k.KV.Txn(ctx)
}

// A nothing-due check of 1,000 lineages is one range read (the bundles are
// not read), whatever the number of lineages.
func TestFleetAdapterView1000OneRead(t *testing.T) {
	c, certs := fill1000(t)
	kv := &countingKV{KV: c.cli.KV}
	c.cli.KV = kv
	start := time.Now()
	recs, err := c.View(t.Context(), certs)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if n, o := kv.gets.Load(), kv.others.Load(); n != 1 || o != 0 {
		t.Errorf("View of 1,000 lineages: %d reads and %d other calls, want one range read", n, o)
	}
	for i, r := range recs {
		if r.Err != nil || r.Name != certs[i].Name || r.Current.Number != 3 || r.Backoff.Failures != 1 {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	t.Logf("View of %d lineages: %v (the benchmark BenchmarkView1000 measures it)", len(certs), took)
}

// fill1000 writes 1,000 lineages' meta, backoff, ARI and bundle records,
// the bundles about 5 KiB each, and returns a client and their
// certificates.
func fill1000(tb testing.TB) (*Client, []renew.Certificate) {
	tb.Helper()
	cl := startCluster(tb, 1)
	c := dial(tb, cl.config(tb, "bench"))
	ctx := tb.Context()
	certs := make([]renew.Certificate, 1000)
	var ops []clientv3.Op
	flush := func() {
		if _, err := c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			tb.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range certs {
		name := fmt.Sprintf("site%04d", i)
		certs[i] = renew.Certificate{Name: name, Domains: []string{name + ".example.com", "www." + name + ".example.com"}}
		g := testGeneration(3, fmt.Sprintf("%032x", i))
		g.Names = sortedNames(certs[i].Domains)
		g.CertPEM = []byte(strings.Repeat("c", 4096))
		ops = append(ops,
			clientv3.OpPut(c.keys.state(name, KindMeta), encode(metaRecord{V: recordVersion, Lineage: name, Meta: g.Meta})),
			clientv3.OpPut(c.keys.state(name, KindBackoff), encode(backoffRecord{V: recordVersion, Lineage: name, Backoff: Backoff{Failures: 1, NotBefore: time.Now()}})),
			clientv3.OpPut(c.keys.state(name, KindARI), encode(ariRecord{V: recordVersion, Lineage: name, ARI: ARI{Serial: g.Serial}})),
			clientv3.OpPut(c.keys.bundle(name), encode(bundleRecord{V: recordVersion, Lineage: name, Meta: g.Meta, CertPEM: string(g.CertPEM), Key: c.sealer.seal(g.KeyPEM, c.keys.bundle(name), name, "key")})),
		)
		if len(ops) >= 100 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
	return c, certs
}
