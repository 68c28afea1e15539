package renew

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/certcrypto"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/internal/pubkey"
)

// FuzzParseState: state.json is read on every run and by -status, and may
// be damaged or written by someone else. parseState never panics; what it
// accepts is plausible and survives a save and a load unchanged.
func FuzzParseState(f *testing.F) {
	t0 := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	good, err := json.Marshal(&state{Version: stateVersion, Current: &genInfo{Seq: 3, Serial: "0a", Domains: []string{"a.example"},
		NotBefore: t0, NotAfter: t0.Add(90 * 24 * time.Hour)}, Failures: 2, RetryNotBefore: t0.Add(time.Hour), LastError: "boom"})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(good), `{"version":1}`, `{"version":2}`, `{"version":1,"current":{"seq":1000000000,"not_before":"2026-01-01T00:00:00Z","not_after":"2027-01-01T00:00:00Z"}}`,
		`{"version":1,"current":{"seq":-1}}`, `{"version":1,"hooks":{"entries":[{"generation":1,"pending":[{"name":"x"}]}]}}`, `[`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseState("state.json", b)
		if st == nil {
			t.Fatal("parseState returned a nil state")
		}
		if err != nil {
			return
		}
		if st.Version < 1 || st.Version > stateVersion {
			t.Fatalf("accepted version %d", st.Version)
		}
		if g := st.Current; g != nil && (!(atomicfs.Generation{Seq: g.Seq}).Plausible() || !g.NotAfter.After(g.NotBefore)) {
			t.Fatalf("accepted an implausible current generation %+v", g)
		}
		once, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("an accepted state does not encode: %v", err)
		}
		st2, err := parseState("state.json", once)
		if err != nil {
			t.Fatalf("a saved state does not load: %v\n%s", err, once)
		}
		twice, err := json.Marshal(st2)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("save, load, save differs:\n%s\n%s", once, twice)
		}
	})
}

// FuzzDecodePending: pending.key is the order journal, read by every run
// that finds one. decodePending never panics, never puts key material in
// its errors, and what it accepts encodes back to an equivalent journal.
func FuzzDecodePending(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	rec := InFlight{OrderURL: "https://ca.example/order/1", Domains: []string{"a.example"}, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	good, err := encodePending(certcrypto.PEMEncode(k), rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(certcrypto.PEMEncode(k))
	f.Add(append(bytes.Clone(good), good...))
	f.Add([]byte("-----BEGIN RENEWKIT ORDER-----\neyJvcmRlcl91cmwiOiJ4In0=\n-----END RENEWKIT ORDER-----\n"))
	f.Add([]byte("garbage\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := decodePending(b)
		if err != nil {
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "BEGIN") {
				t.Fatalf("error quotes the input: %v", err)
			}
			return
		}
		if o.key == nil || o.rec.OrderURL == "" {
			t.Fatalf("accepted a journal without key or order: %+v", o)
		}
		again, err := encodePending(certcrypto.PEMEncode(o.key), o.rec)
		if err != nil {
			t.Fatalf("an accepted journal does not encode: %v", err)
		}
		o2, err := decodePending(again)
		if err != nil || o2.rec.OrderURL != o.rec.OrderURL || !pubkey.Equal(o.key.Public(), o2.key.Public()) {
			t.Fatalf("encode, decode differs: %v", err)
		}
	})
}
