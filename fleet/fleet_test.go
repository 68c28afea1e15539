package fleet

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/etcdtest"
	"github.com/renewkit/renewkit/lockfile"
	"github.com/renewkit/renewkit/renew"
)

var www = Lineage{Name: "www", Domains: []string{"www.example.com", "example.com"}}

// testGeneration returns a generation whose bytes say which one it is.
func testGeneration(n int64, serial string) Generation {
	return Generation{
		Meta: Meta{
			Number: n, Serial: serial, Names: []string{"example.com", "www.example.com"},
			NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		CertPEM:  []byte("-----BEGIN CERTIFICATE-----\ncert " + serial + "\n-----END CERTIFICATE-----\n"),
		ChainPEM: []byte("-----BEGIN CERTIFICATE-----\nchain\n-----END CERTIFICATE-----\n"),
		KeyPEM:   []byte("-----BEGIN PRIVATE KEY-----\nsecret key " + serial + "\n-----END PRIVATE KEY-----\n"),
	}
}

// twoNodes returns clients for nodes "node-a" and "node-b" with cfg.
func twoNodes(t *testing.T, cfg Config) (a, b *Client) {
	t.Helper()
	cfg.Node = "node-a"
	a = dial(t, cfg)
	cfg.Node = "node-b"
	return a, dial(t, cfg)
}

func TestLockContentionNamesHolder(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	since := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return since }

	unlock, err := tryLock(ctx, a, "www")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Client{"other node": b, "same client": a} {
		_, err = tryLock(ctx, c, "www")
		var he *lockfile.HeldError
		if !errors.Is(err, lockfile.ErrLocked) || !errors.As(err, &he) {
			t.Fatalf("%s: TryLock of a held lock: %v, want a HeldError matching lockfile.ErrLocked", name, err)
		}
		if he.Node != "node-a" || !he.Since.Equal(since) || !strings.Contains(err.Error(), `"node-a" since 2026-05-01T12:00:00Z`) {
			t.Errorf("%s: HeldError %+v (%v) does not name holder node-a", name, he, err)
		}
	}
	// Another lineage is independent.
	if _, err := tryLock(ctx, b, "api"); err != nil {
		t.Fatalf("lock of another lineage: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatalf("second unlock: %v, want nil (idempotent)", err)
	}
	if _, err := tryLock(ctx, b, "www"); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
}

func TestPublishReadAndClear(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()

	l, err := a.TryLockFenced(ctx, www.Name)
	if err != nil {
		t.Fatal(err)
	}
	j := Journal{OrderURL: "https://ca.test/order/1", Names: www.Domains, Created: time.Now().UTC(), KeyPEM: []byte("order key")}
	if err := a.PutJournal(ctx, l, www, j); err != nil {
		t.Fatal(err)
	}
	if err := a.PutBackoff(ctx, l, Backoff{Failures: 2, LastError: strings.Repeat("x", 5000)}); err != nil {
		t.Fatal(err)
	}
	if err := a.PutARI(ctx, l, ARI{Serial: "01", WindowStart: time.Unix(100, 0).UTC()}); err != nil {
		t.Fatal(err)
	}
	// Another node sees all of it in one read, the journal's key unsealed.
	snap, err := b.ReadStates(ctx, www, Lineage{Name: "never-published", Domains: []string{"x.test"}})
	if err != nil {
		t.Fatal(err)
	}
	st := snap.States[www.Name]
	if st.Err != nil || st.Journal == nil || st.Backoff == nil || st.ARI == nil || st.Meta != nil {
		t.Fatalf("state before publish: %+v", st)
	}
	if !bytes.Equal(st.Journal.KeyPEM, j.KeyPEM) || st.Journal.Node != "node-a" || st.Holder != "node-a" {
		t.Errorf("journal %+v holder %q: want the order key and node-a", st.Journal, st.Holder)
	}
	if len(st.Backoff.LastError) != MaxErrorText {
		t.Errorf("backoff error text %d bytes, want cut to %d", len(st.Backoff.LastError), MaxErrorText)
	}
	if other := snap.States["never-published"]; other == nil || other.Meta != nil || other.Err != nil {
		t.Errorf("lineage without records: %+v", other)
	}
	if _, err := b.ReadGeneration(ctx, www); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadGeneration before publish: %v, want fs.ErrNotExist", err)
	}

	g := testGeneration(1, "aa01")
	if err := a.PublishGeneration(ctx, l, www, g); err != nil {
		t.Fatal(err)
	}
	got, err := b.ReadGeneration(ctx, www)
	if err != nil {
		t.Fatal(err)
	}
	if got.Number != 1 || got.Serial != "aa01" || got.IssuedBy != "node-a" || !bytes.Equal(got.KeyPEM, g.KeyPEM) || !bytes.Equal(got.CertPEM, g.CertPEM) {
		t.Errorf("generation read back: %+v", got.Meta)
	}
	snap, err = b.ReadStates(ctx, www)
	if err != nil {
		t.Fatal(err)
	}
	st = snap.States[www.Name]
	if st.Err != nil || st.Meta == nil || st.Meta.Number != 1 || st.Journal != nil || st.Backoff != nil || st.ARI == nil {
		t.Errorf("state after publish: %+v (want meta 1, journal and backoff cleared, ARI kept)", st)
	}
	// The fleet never goes back.
	if err := a.PublishGeneration(ctx, l, www, testGeneration(1, "aa02")); !errors.Is(err, ErrNotNewer) {
		t.Errorf("republish of number 1: %v, want ErrNotNewer", err)
	}
	// The key is sealed in etcd.
	raw, err := a.cli.Get(ctx, a.keys.bundle(www.Name))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Kvs[0].Value, []byte("secret key")) {
		t.Error("the private key is stored in etcd in plaintext")
	}
	// Writes need this lineage's lock of this client.
	if err := b.PublishGeneration(ctx, l, www, testGeneration(2, "aa03")); err == nil {
		t.Error("publish with another client's lock succeeded")
	}
}

// A holder whose lease is gone writes nothing, and its Unlock does not
// release the next holder's lock.
func TestFencedAfterLeaseLoss(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()

	la, err := a.TryLockFenced(ctx, www.Name)
	if err != nil {
		t.Fatal(err)
	}
	// What a pause past the TTL does on the server: the lease ends.
	if _, err := a.cli.Revoke(ctx, a.sess.Lease()); err != nil {
		t.Fatal(err)
	}
	lb, err := b.TryLockFenced(ctx, www.Name)
	if err != nil {
		t.Fatalf("lock after the holder's lease ended: %v", err)
	}
	if lb.Revision() <= la.Revision() {
		t.Errorf("fencing token went from %d to %d, want increasing", la.Revision(), lb.Revision())
	}
	if err := b.PublishGeneration(ctx, lb, www, testGeneration(1, "b1")); err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func() error{
		"publish": func() error { return a.PublishGeneration(ctx, la, www, testGeneration(9, "stale")) },
		"journal": func() error {
			return a.PutJournal(ctx, la, www, Journal{OrderURL: "u", Names: www.Domains, KeyPEM: []byte("k")})
		},
		"clear journal": func() error { return a.ClearJournal(ctx, la) },
		"backoff":       func() error { return a.PutBackoff(ctx, la, Backoff{Failures: 1}) },
		"ari":           func() error { return a.PutARI(ctx, la, ARI{Serial: "x"}) },
	} {
		err := write()
		if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), `"node-b"`) {
			t.Errorf("%s by the stale holder: %v, want ErrFenced naming node-b", name, err)
		}
	}
	if err := la.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := tryLock(ctx, a, www.Name); !errors.Is(err, lockfile.ErrLocked) {
		t.Errorf("stale Unlock released node-b's lock: TryLock = %v", err)
	}
	got, err := a.ReadGeneration(ctx, www)
	if err != nil || got.Serial != "b1" || got.Number != 1 {
		t.Fatalf("after the stale writes: %v %+v, want node-b's generation 1", err, got)
	}
	// A new lock takes a new lease: the client recovers from the lost one.
	if err := lb.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := tryLock(ctx, a, www.Name); err != nil {
		t.Fatalf("lock with a new lease: %v", err)
	}
}

func TestWatch(t *testing.T) {
	cl := startCluster(t, 1)
	a := dial(t, cl.config(t, "node-a"))
	ctx := t.Context()
	snap, err := a.ReadStates(ctx, www)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := a.watch(wctx, snap.Revision)
	l, err := a.TryLockFenced(ctx, www.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PublishGeneration(ctx, l, www, testGeneration(1, "w1")); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for ch := range changes {
		if ch.Err != nil {
			t.Fatal(ch.Err)
		}
		if ch.Lineage != www.Name {
			t.Errorf("change for lineage %q", ch.Lineage)
		}
		s := string(ch.Kind)
		if ch.Deleted {
			s += "-"
		}
		got = append(got, s)
		if ch.Kind == KindLock && ch.Deleted {
			cancel()
		}
	}
	// The publish's delete of absent journal and backoff keys is no event.
	if want := "lock meta lock-"; strings.Join(got, " ") != want {
		t.Errorf("changes %q, want %q", strings.Join(got, " "), want)
	}
}

// Bad records in etcd are errors naming their key; other lineages read fine.
func TestBadRecords(t *testing.T) {
	cl := startCluster(t, 1)
	cfg := cl.config(t, "node-a")
	a := dial(t, cfg)
	otherKey := cfg
	otherKey.SealKeyFile = writeSealKey(t, t.TempDir(), 99)
	o := dial(t, otherKey)
	ctx := t.Context()

	api := Lineage{Name: "api", Domains: []string{"api.example.com"}}
	publish := func(c *Client, lin Lineage, g Generation) {
		t.Helper()
		l, err := c.TryLockFenced(ctx, lin.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Unlock()
		if err := c.PublishGeneration(ctx, l, lin, g); err != nil {
			t.Fatal(err)
		}
	}
	apiGen := testGeneration(1, "ap1")
	apiGen.Names = api.Domains
	publish(a, api, apiGen)
	publish(a, www, testGeneration(1, "good"))
	good, err := a.cli.Get(ctx, a.keys.bundle(www.Name))
	if err != nil {
		t.Fatal(err)
	}
	goodBundle := good.Kvs[0].Value
	apiBundle, err := a.cli.Get(ctx, a.keys.bundle(api.Name))
	if err != nil {
		t.Fatal(err)
	}

	bundleKey := a.keys.bundle(www.Name)
	metaKey := a.keys.state(www.Name, KindMeta)
	for _, tc := range []struct {
		name, key, value, want string
		read                   func() error
	}{
		{name: "garbage", key: bundleKey, value: "\x00\xffnot json", want: "not a JSON record"},
		{name: "unknown version", key: bundleKey, value: `{"v":2}`, want: "record version 2"},
		{name: "unknown field", key: bundleKey, value: strings.Replace(string(goodBundle), `{"v":1,`, `{"v":1,"extra":true,`, 1), want: `unknown field "extra"`},
		{name: "data after the record", key: bundleKey, value: string(goodBundle) + `{}`, want: "after top-level value"},
		{name: "oversized", key: bundleKey, value: `{"v":1,"pad":"` + strings.Repeat("a", MaxBundleSize) + `"}`, want: "more than the limit"},
		{name: "copied from another lineage", key: bundleKey, value: string(apiBundle.Kvs[0].Value), want: `lineage "api"`},
		{name: "sealed with another key", key: bundleKey, read: func() error { _, err := o.ReadGeneration(ctx, www); return err }, want: "not among this node's seal keys"},
		{name: "meta garbage in a range read", key: metaKey, value: "{", read: func() error {
			snap, err := a.ReadStates(ctx, www, api)
			if err != nil {
				return err
			}
			if st := snap.States[api.Name]; st.Err != nil || st.Meta == nil {
				t.Errorf("the good lineage suffers from the bad one: %+v", st)
			}
			return snap.States[www.Name].Err
		}, want: "not a JSON record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.value != "" {
				if _, err := a.cli.Put(ctx, tc.key, tc.value); err != nil {
					t.Fatal(err)
				}
				defer a.cli.Put(context.WithoutCancel(ctx), bundleKey, string(goodBundle))
			}
			read := tc.read
			if read == nil {
				read = func() error { _, err := a.ReadGeneration(ctx, www); return err }
			}
			err := read()
			var re *RecordError
			if !errors.Is(err, ErrRecord) || !errors.As(err, &re) || re.Key != tc.key {
				t.Fatalf("read: %v, want a RecordError for %s", err, tc.key)
			}
			if !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the key and say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret key") {
				t.Errorf("error %q shows key material", err)
			}
		})
	}
	// A sealed key swapped into another record does not unseal even when the
	// rest of the record is consistent.
	var rec bundleRecord
	if err := decode(bundleKey, goodBundle, MaxBundleSize, &rec); err != nil {
		t.Fatal(err)
	}
	var apiRec bundleRecord
	if err := decode("", apiBundle.Kvs[0].Value, MaxBundleSize, &apiRec); err != nil {
		t.Fatal(err)
	}
	rec.Key = apiRec.Key
	if _, err := a.cli.Put(ctx, bundleKey, encode(rec)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadGeneration(ctx, www); !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("swapped sealed key: %v, want an authentication failure", err)
	}
}

// Nothing listens: every call fails with ErrUnavailable within the request
// timeout, and a cancelled caller gets its own error.
func TestUnavailableWhenUnreachable(t *testing.T) {
	cfg := Config{
		Endpoints:      []string{"http://127.0.0.1:" + strconv.Itoa(etcdtest.FreePort(t))},
		Node:           "lonely",
		RequestTimeout: 300 * time.Millisecond,
		DialTimeout:    300 * time.Millisecond,
		SealKeyFile:    writeSealKey(t, t.TempDir(), 1),
	}
	c := dial(t, cfg)
	ctx := t.Context()
	if _, err := tryLock(ctx, c, "www"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("TryLock: %v, want ErrUnavailable", err)
	}
	if _, err := c.ReadStates(ctx, www); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ReadStates: %v, want ErrUnavailable", err)
	}
	if _, err := c.ShareAccountKey(ctx, testDirectory, testAccountKey("lonely")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ShareAccountKey: %v, want ErrUnavailable", err)
	}
	if _, err := c.ReadAccountKey(ctx, testDirectory); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ReadAccountKey: %v, want ErrUnavailable", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.ReadStates(cctx, www); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Errorf("ReadStates with a cancelled context: %v, want context.Canceled only", err)
	}
}

// Bad arguments are refused before anything is sent (the client here has no
// server at all).
func TestBadArguments(t *testing.T) {
	c := dial(t, Config{
		Endpoints: []string{"http://127.0.0.1:1"}, Node: "n", RequestTimeout: 100 * time.Millisecond,
		SealKeyFile: writeSealKey(t, t.TempDir(), 1),
	})
	ctx := t.Context()
	lock := &Lock{c: c, lineage: www.Name, key: c.keys.state(www.Name, KindLock), rev: 5}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"lineage without names", func() error { _, err := c.ReadStates(ctx, Lineage{Name: "www"}); return err }(), "no domain names"},
		{"name with a slash", func() error {
			_, err := c.ReadGeneration(ctx, Lineage{Name: "a/b", Domains: []string{"x"}})
			return err
		}(), "invalid lineage name"},
		{"lock name with a slash", func() error { _, err := tryLock(ctx, c, "../x"); return err }(), "invalid lineage name"},
		{"publish without lock", c.PublishGeneration(ctx, nil, www, testGeneration(1, "x")), "not under a lock"},
		{"publish under another lineage's lock", c.PublishGeneration(ctx, lock, Lineage{Name: "api", Domains: []string{"api.test"}}, testGeneration(1, "x")), "not under a lock"},
		{"publish for other names", c.PublishGeneration(ctx, lock, Lineage{Name: "www", Domains: []string{"other.test"}}, testGeneration(1, "x")), "record for names"},
		{"publish generation 0", c.PublishGeneration(ctx, lock, www, testGeneration(0, "x")), "incomplete"},
		{"journal for other names", c.PutJournal(ctx, lock, www, Journal{OrderURL: "u", Names: []string{"a.test"}, KeyPEM: []byte("k")}), "record for names"},
		{"journal without key", c.PutJournal(ctx, lock, www, Journal{OrderURL: "u", Names: www.Domains}), "order URL and key are required"},
		{"backoff without lock", c.PutBackoff(ctx, nil, Backoff{}), "no lock"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) || errors.Is(tc.err, ErrUnavailable) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, tc.err, tc.want)
		}
	}
	for _, tc := range []struct {
		name, field string
		cfg         Config
	}{
		{"no endpoints", "Endpoints", Config{SealKeyFile: "x"}},
		{"no seal key", "SealKeyFile", Config{Endpoints: []string{"http://127.0.0.1:1"}}},
		{"cert without key", "KeyFile", Config{Endpoints: []string{"https://127.0.0.1:1"}, SealKeyFile: writeSealKey(t, t.TempDir(), 1), CertFile: "c.pem"}},
		{"missing CA file", "CAFile", Config{Endpoints: []string{"https://127.0.0.1:1"}, SealKeyFile: writeSealKey(t, t.TempDir(), 1), CAFile: "/nonexistent/ca.pem"}},
	} {
		_, err := Dial(tc.cfg)
		ce, ok := errors.AsType[*renew.ConfigError](err)
		if err == nil || !strings.Contains(err.Error(), "fleet: config") || !ok || ce.Field != tc.field {
			t.Errorf("Dial with %s: %v, want a config error naming %s", tc.name, err, tc.field)
		}
	}
}

// A watch from a compacted revision ends with an error, so the node reads
// again instead of missing changes.
func TestWatchCompacted(t *testing.T) {
	a := dial(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	snap, err := a.ReadStates(ctx, www)
	if err != nil {
		t.Fatal(err)
	}
	l := waitLock(t, a, www.Name, 0)
	if err := a.PutBackoff(ctx, l, Backoff{Failures: 1}); err != nil {
		t.Fatal(err)
	}
	resp, err := a.cli.Put(ctx, "/unrelated", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	var got []change
	for ch := range a.watch(ctx, snap.Revision) {
		got = append(got, ch)
	}
	if len(got) != 1 || got[0].Err == nil || !strings.Contains(got[0].Err.Error(), "compacted") {
		t.Errorf("watch from a compacted revision: %+v, want one change with a compaction error", got)
	}
}

// TestLockAdoptsItsOwnGhost: a lock transaction that committed while its
// reply was lost (or a Lock whose Unlock failed) left the key on the
// client's own lease, held by nobody; every later TryLock reported it held
// by this very node, and the lease, kept alive by the client, never let it
// go. The client adopts such a key; another node still sees it held.
func TestLockAdoptsItsOwnGhost(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	l, err := a.TryLockFenced(ctx, "www")
	if err != nil {
		t.Fatal(err)
	}
	// The holder is gone from this client's view with the key still on its
	// lease: what a lost reply or a failed Unlock leaves.
	a.forget(l)
	if _, err := tryLock(ctx, b, "www"); !errors.Is(err, lockfile.ErrLocked) {
		t.Fatalf("another node: %v, want the lock held", err)
	}
	adopted, err := a.TryLockFenced(ctx, "www")
	if err != nil {
		t.Fatalf("the client's own ghost lock was not adopted: %v", err)
	}
	if adopted.Revision() != l.Revision() {
		t.Errorf("adopted revision %d, want the ghost's %d (fencing continues)", adopted.Revision(), l.Revision())
	}
	// A live lock of this client is not adopted twice.
	if _, err := a.TryLockFenced(ctx, "www"); !errors.Is(err, lockfile.ErrLocked) {
		t.Fatalf("second TryLock while the adopted lock is live: %v, want held", err)
	}
	// The superseded Lock is fenced out: it can neither delete the
	// adopted lock nor write.
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := tryLock(ctx, b, "www"); !errors.Is(err, lockfile.ErrLocked) {
		t.Fatalf("the superseded Lock's Unlock released the adopted lock: %v", err)
	}
	if err := a.PutBackoff(ctx, l, Backoff{Failures: 1}); !errors.Is(err, ErrFenced) {
		t.Fatalf("a write under the superseded Lock: %v, want ErrFenced", err)
	}
	if err := a.PutBackoff(ctx, adopted, Backoff{Failures: 1}); err != nil {
		t.Fatalf("a write under the adopted Lock: %v", err)
	}
	if err := adopted.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := tryLock(ctx, b, "www"); err != nil {
		t.Fatalf("after the adopted lock's Unlock: %v", err)
	}
}

// TestLockOneHolderPerClientUnderRace: goroutines of one client racing for
// one lineage. A goroutine whose lock committed but was not yet recorded
// made another take its key for a ghost and adopt it: two holders.
func TestLockOneHolderPerClientUnderRace(t *testing.T) {
	a, _ := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	for round := range 40 {
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			held  []*Lock
			other []error
		)
		for range 4 {
			wg.Go(func() {
				l, err := a.TryLockFenced(ctx, "race")
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					held = append(held, l)
				} else if !errors.Is(err, lockfile.ErrLocked) {
					other = append(other, err)
				}
			})
		}
		wg.Wait()
		if len(other) > 0 || len(held) != 1 {
			t.Fatalf("round %d: %d holders (want 1), other errors %v", round, len(held), other)
		}
		if err := held[0].Unlock(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPublishRefusesWhatNodesCannotRead: a publish could write a bundle
// larger than every reader accepts, and overwrite a record a newer version
// of this package wrote (its "repair" path), rolling the fleet back.
func TestPublishRefusesWhatNodesCannotRead(t *testing.T) {
	a, _ := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	l, err := a.TryLockFenced(ctx, www.Name)
	if err != nil {
		t.Fatal(err)
	}
	huge := testGeneration(1, "01")
	huge.ChainPEM = bytes.Repeat([]byte("x"), MaxBundleSize)
	if err := a.PublishGeneration(ctx, l, www, huge); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("oversized publish: %v, want refused", err)
	}
	metaKey := a.keys.state(www.Name, KindMeta)
	if resp, err := a.cli.Get(ctx, metaKey); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the refused publish wrote something: %v %v", resp, err)
	}
	if _, err := a.cli.Put(ctx, metaKey, `{"v":2,"lineage":"www","number":9}`); err != nil {
		t.Fatal(err)
	}
	if err := a.PublishGeneration(ctx, l, www, testGeneration(1, "01")); err == nil || !strings.Contains(err.Error(), "newer than this node") {
		t.Fatalf("publish over a newer version's record: %v, want refused", err)
	}
	if resp, _ := a.cli.Get(ctx, metaKey); len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"v":2`) {
		t.Fatalf("the newer record was overwritten: %v", resp.Kvs)
	}
}

// tryLock takes lineage's fleet lock through c, as TryLockFenced, for
// tests that need only its release.
func tryLock(ctx context.Context, c *Client, lineage string) (unlock func() error, err error) {
	l, err := c.TryLockFenced(ctx, lineage)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}
