package fleet

import (
	"bytes"
	"encoding/pem"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
)

const testDirectory = "https://ca.example/directory"

// testAccountKey is a PEM private key block whose bytes say whose it is
// (the fleet does not parse it).
func testAccountKey(who string) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("account key of " + who)})
}

// Two nodes sharing at once: one wins, both end with its key, and a later
// share (a third node, a new run) gets it too.
func TestShareAccountKeyRace(t *testing.T) {
	a, b := twoNodes(t, startCluster(t, 1).config(t, "node-a"))
	ctx := t.Context()
	if _, err := a.ReadAccountKey(ctx, testDirectory); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadAccountKey before any share: %v, want fs.ErrNotExist", err)
	}
	keys := map[*Client][]byte{a: testAccountKey("a"), b: testAccountKey("b")}
	got := map[*Client][]byte{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c, k := range keys {
		wg.Go(func() {
			fk, err := c.ShareAccountKey(ctx, testDirectory, k, 0)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			got[c] = fk.KeyPEM
			mu.Unlock()
		})
	}
	wg.Wait()
	if !bytes.Equal(got[a], got[b]) {
		t.Fatalf("the nodes got different fleet keys:\n%s\n%s", got[a], got[b])
	}
	if !bytes.Equal(got[a], keys[a]) && !bytes.Equal(got[a], keys[b]) {
		t.Fatalf("fleet key %q is neither node's", got[a])
	}
	again, err := b.ShareAccountKey(ctx, testDirectory, testAccountKey("late"), 0)
	if err != nil || !bytes.Equal(again.KeyPEM, got[a]) || again.Epoch != 1 {
		t.Fatalf("a later share: %q (epoch %d), %v; want the first key %q, epoch 1", again.KeyPEM, again.Epoch, err, got[a])
	}
	read, err := a.ReadAccountKey(ctx, testDirectory)
	if err != nil || !bytes.Equal(read.KeyPEM, got[a]) {
		t.Fatalf("ReadAccountKey: %q, %v; want %q", read.KeyPEM, err, got[a])
	}
	// Another CA has its own account.
	other, err := a.ShareAccountKey(ctx, testDirectory+"2", testAccountKey("other CA"), 0)
	if err != nil || !bytes.Equal(other.KeyPEM, testAccountKey("other CA")) {
		t.Fatalf("share for another CA: %q, %v; want the caller's own key", other.KeyPEM, err)
	}
	// The key is sealed in etcd.
	resp, err := a.cli.Get(ctx, a.keys.account(testDirectory))
	if err != nil {
		t.Fatal(err)
	}
	var rec accountRecord
	if err := a.unwrap(a.keys.account(testDirectory), kindAccount, testDirectory, resp.Kvs[0].Value, MaxStateSize, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Key.KeyID != a.sealer.KeyID() || bytes.Contains(rec.Key.Data, []byte("account key of")) || rec.DirectoryURL != testDirectory {
		t.Fatalf("the account record does not hold the key sealed: %+v", rec)
	}
}

// A record that cannot be used is a RecordError naming the key, never
// key material; nothing is overwritten.
func TestShareAccountKeyBadRecord(t *testing.T) {
	cfg := startCluster(t, 1).config(t, "node-a")
	a := dial(t, cfg)
	otherSeal := cfg
	otherSeal.SealKeyFile = writeSealKey(t, t.TempDir(), 99)
	otherSeal.Node = "node-o"
	o := dial(t, otherSeal)
	ctx := t.Context()
	key := a.keys.account(testDirectory)
	if _, err := a.ShareAccountKey(ctx, testDirectory, testAccountKey("a"), 0); err != nil {
		t.Fatal(err)
	}
	good, err := a.cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	goodValue := string(good.Kvs[0].Value)

	// Sealed with a seal key the other node does not have.
	_, err = o.ShareAccountKey(ctx, testDirectory, testAccountKey("o"), 0)
	checkAccountErr(t, "another seal key", err, key, "not among this node's seal keys")

	for _, tc := range []struct{ name, value, want string }{
		{"garbage", "not json", "not a JSON record"},
		{"unknown field", strings.Replace(goodValue, `{"v":2,`, `{"v":2,"extra":1,`, 1), `unknown field "extra"`},
		{"another directory", strings.Replace(goodValue, testDirectory, "https://evil.example/dir", 1), "MAC does not match"},
		{"tampered", strings.Replace(goodValue, `"node":"node-a"`, `"node":"node-a","key":{"kid":"x","data":"AAAA"},"x":1`, 1), ""},
	} {
		if _, err := a.cli.Put(ctx, key, tc.value); err != nil {
			t.Fatal(err)
		}
		_, err := a.ShareAccountKey(ctx, testDirectory, testAccountKey("a2"), 0)
		checkAccountErr(t, tc.name, err, key, tc.want)
		_, err = a.ReadAccountKey(ctx, testDirectory)
		checkAccountErr(t, tc.name+" (read)", err, key, tc.want)
		cur, gerr := a.cli.Get(ctx, key)
		if gerr != nil || string(cur.Kvs[0].Value) != tc.value {
			t.Errorf("%s: the bad record was overwritten", tc.name)
		}
	}

	// A value that is not a PEM private key is refused before writing.
	if _, err := a.cli.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ShareAccountKey(ctx, testDirectory, []byte("not a key"), 0); err == nil {
		t.Fatal("sharing a non-PEM key succeeded")
	}
	if resp, _ := a.cli.Get(ctx, key); len(resp.Kvs) != 0 {
		t.Fatal("a non-PEM key was written")
	}
}

func checkAccountErr(t *testing.T, what string, err error, key, want string) {
	t.Helper()
	var re *RecordError
	if !errors.Is(err, ErrRecord) || !errors.As(err, &re) || re.Key != key || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v, want a RecordError for %s containing %q", what, err, key, want)
	}
	if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("%s: the error shows key material: %v", what, err)
	}
}
