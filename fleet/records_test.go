package fleet

import (
	"errors"
	"testing"
)

// FuzzDecode: whatever etcd hands back, decoding never panics, and what it
// accepts is a record of version 2 that encodes back to an equivalent value.
func FuzzDecode(f *testing.F) {
	g := testGeneration(1, "f1")
	f.Add(encode(bundleRecord{V: 2, Lineage: "www", Meta: g.Meta, CertPEM: "c", Key: sealed{KeyID: "00", Data: []byte{1, 2}}}))
	f.Add(encode(metaRecord{V: 2, Lineage: "www", Meta: g.Meta}))
	f.Add(`{"v":2,"lineage":"www","failures":3,"last_error":"x"}`)
	f.Add(`{"v":2}`)
	f.Add(`{"v":1} {}`)
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, value string) {
		for _, v := range []versioned{&bundleRecord{}, &metaRecord{}, &backoffRecord{}, &journalRecord{}, &ariRecord{}} {
			err := decode("/k", []byte(value), MaxStateSize, v)
			if err != nil {
				var re *RecordError
				if !errors.As(err, &re) || re.Key != "/k" {
					t.Fatalf("decode error %v is not a RecordError for /k", err)
				}
				continue
			}
			if v.version() != recordVersion {
				t.Fatalf("accepted version %d", v.version())
			}
			if err := decode("/k", []byte(encode(v)), MaxStateSize, v); err != nil {
				t.Fatalf("re-encoded record does not decode: %v", err)
			}
		}
	})
}

func TestSplitState(t *testing.T) {
	k := keyspace{root: "/p/v1/"}
	for _, tc := range []struct {
		key, name string
		kind      Kind
		ok        bool
	}{
		{"/p/v1/state/www/meta", "www", KindMeta, true},
		{"/p/v1/state/www/lock", "www", KindLock, true},
		{"/p/v1/state/www", "", "", false},
		{"/p/v1/state//meta", "", "", false},
		{"/p/v1/bundle/www", "", "", false},
		{"/q/v1/state/www/meta", "", "", false},
	} {
		name, kind, ok := k.splitState(tc.key)
		if name != tc.name || kind != tc.kind || ok != tc.ok {
			t.Errorf("splitState(%q) = %q %q %v", tc.key, name, kind, ok)
		}
	}
	if k.state("www", KindARI) != "/p/v1/state/www/ari" || k.bundle("www") != "/p/v1/bundle/www" {
		t.Error("key layout changed")
	}
}
