package renew

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/expiry"
)

// existing returns a certificate for c signed by e's CA, as another client
// would have written it: the leaf, its chain and its key, in PEM.
func (e *env) existing(c Certificate, kt KeyType) Existing {
	e.t.Helper()
	key, err := kt.Generate()
	if err != nil {
		e.t.Fatal(err)
	}
	certPEM, err := e.ca.sign(key.Public(), c.Domains)
	if err != nil {
		e.t.Fatal(err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		e.t.Fatal(err)
	}
	return Existing{Cert: certPEM, Key: keyPEM}
}

// An adopted certificate is served as generation 1 with its hooks run,
// without an order; the next Run finds it not due; adopting it again
// changes nothing; a second certificate for the lineage is refused.
func TestAdopt(t *testing.T) {
	e := newEnv(t)
	h := &counter{name: "reload"}
	c := cert("site", h)
	ex := e.existing(c, EC256)
	res := e.r.Adopt(context.Background(), c, ex)
	if res.Outcome != Adopted || res.Err != nil || res.Generation != 1 || res.Issued != 0 {
		t.Fatalf("Adopt = %+v", res)
	}
	if res.RenewAt.IsZero() || !res.RenewAt.After(e.clk.Now()) {
		t.Errorf("RenewAt %v: the adopted certificate should be decided on, and not due", res.RenewAt)
	}
	leaf := served(t, filepath.Join(e.root, "site"))
	if got, _ := leafSerial(ex.Cert); got != serialHex(leaf.SerialNumber) {
		t.Fatalf("serving serial %x, want the adopted %s", leaf.SerialNumber, got)
	}
	if h.n.Load() != 1 {
		t.Errorf("deploy hook ran %d times, want 1", h.n.Load())
	}
	if n := e.ca.issuedCount(); n != 0 {
		t.Fatalf("Adopt ordered %d certificates", n)
	}
	if res := e.run(c); res.Outcome != NotDue || res.Generation != 1 {
		t.Fatalf("Run after Adopt = %+v, want NotDue on generation 1", res)
	}
	if res := e.r.Adopt(context.Background(), c, ex); res.Outcome != Adopted || res.Generation != 1 {
		t.Fatalf("second Adopt = %+v, want Adopted, unchanged", res)
	}
	other := e.existing(c, EC256)
	if res := e.r.Adopt(context.Background(), c, other); res.Outcome != Failed || !errors.Is(res.Err, fs.ErrExist) {
		t.Fatalf("Adopt of another certificate = %+v, want Failed matching fs.ErrExist", res)
	}
	if h.n.Load() != 1 || e.ca.issuedCount() != 0 {
		t.Errorf("hooks %d, orders %d after the refused adoptions; want 1 and 0", h.n.Load(), e.ca.issuedCount())
	}
}

// leafSerial returns the serial of certPEM's first certificate.
func leafSerial(certPEM []byte) (string, error) {
	certs, err := expiry.ParseChain("test", certPEM)
	if err != nil {
		return "", err
	}
	return serialHex(certs[0].SerialNumber), nil
}

// Bad input fails before anything is written: a key of another
// certificate, a truncated certificate, other names, another key type.
func TestAdoptRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	c := cert("site")
	good := e.existing(c, EC256)
	otherKey := e.existing(c, EC256).Key
	other := cert("other")
	tests := []struct {
		name string
		c    Certificate
		ex   Existing
	}{
		{"key of another certificate", c, Existing{Cert: good.Cert, Key: otherKey}},
		{"truncated certificate", c, Existing{Cert: good.Cert[:len(good.Cert)/2], Key: good.Key}},
		{"no key", c, Existing{Cert: good.Cert}},
		{"other names", other, good},
		{"other key type", Certificate{Name: "site", Domains: c.Domains, KeyType: RSA2048}, good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.r.Adopt(context.Background(), tt.c, tt.ex)
			if res.Outcome != Failed || res.Err == nil {
				t.Fatalf("Adopt = %+v, want Failed", res)
			}
			if _, err := os.Stat(filepath.Join(e.root, tt.c.Name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the lineage directory exists after a refused adoption (%v)", err)
			}
		})
	}
}

// An Adopt killed after writing the generation and before journaling it
// leaves a generation nobody vouches for: the next Adopt of the same
// certificate makes it current instead of writing another.
func TestAdoptFinishesKilledAdopt(t *testing.T) {
	e := newEnv(t)
	c := cert("site")
	ex := e.existing(c, EC256)
	// What a killed Adopt leaves: generation 1 written, no state.json.
	store, err := atomicfs.Open(filepath.Join(e.root, "site"), e.r.Modes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Install(atomicfs.Files{Cert: ex.Cert, Key: ex.Key}); err != nil {
		t.Fatal(err)
	}
	res := e.r.Adopt(context.Background(), c, ex)
	if res.Outcome != Adopted || res.Generation != 1 {
		t.Fatalf("Adopt after a killed one = %+v, want Adopted generation 1", res)
	}
	served(t, filepath.Join(e.root, "site"))
}
