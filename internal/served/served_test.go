package served_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testpki"
)

// generation is a self-signed certificate and its key, as PEM.
type generation struct {
	cert, chain, key []byte
	serial           string
}

// tb is the part of testing.TB the helpers use (the Example has its own).
type tb interface {
	Helper()
	Fatal(args ...any)
	TempDir() string
}

func newGeneration(t tb, serial int64) generation {
	t.Helper()
	ca, err := testpki.NewCA(&x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(&x509.Certificate{
		SerialNumber: big.NewInt(serial), DNSNames: []string{"www.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return generation{cert: leaf.CertPEM, chain: ca.PEM, key: leaf.KeyPEM, serial: fmt.Sprintf("%x", serial)}
}

// files are the five files of g, as renewkit lays them out.
func (g generation) files() map[string][]byte {
	full := append(append([]byte{}, g.cert...), g.chain...)
	return map[string][]byte{
		served.CertFile:      g.cert,
		served.ChainFile:     g.chain,
		served.FullchainFile: full,
		served.KeyFile:       g.key,
		served.CombinedFile:  append(append([]byte{}, g.key...), full...),
	}
}

// lineage writes files into a new lineage directory: the files live in
// generations/000001 and are served through current and stable links.
func lineage(t tb, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	gen := filepath.Join(dir, "generations", "000001")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(gen, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("generations/000001", filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	for _, f := range served.Files() {
		if err := os.Symlink("current/"+f, filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReads(t *testing.T) {
	a, b := newGeneration(t, 0x0a1), newGeneration(t, 0x0b2)
	with := func(f func(m map[string][]byte)) map[string][]byte {
		m := a.files()
		f(m)
		return m
	}
	tests := []struct {
		name  string
		files map[string][]byte
		// want per reader: "" (whole), "mismatch" or "unreadable".
		check, pair, combined string
	}{
		{name: "whole", files: a.files()},
		{
			name:  "key of another generation in privkey.pem",
			files: with(func(m map[string][]byte) { m[served.KeyFile] = b.key }),
			check: "mismatch", pair: "mismatch",
		},
		{
			name:     "key of another generation in combined.pem",
			files:    with(func(m map[string][]byte) { m[served.CombinedFile] = append(append([]byte{}, b.key...), a.cert...) }),
			check:    "mismatch",
			combined: "mismatch",
		},
		{
			name:  "fullchain.pem of another generation",
			files: with(func(m map[string][]byte) { m[served.FullchainFile] = append(append([]byte{}, b.cert...), b.chain...) }),
			check: "mismatch", pair: "mismatch",
		},
		{
			name:  "cert.pem of another generation",
			files: with(func(m map[string][]byte) { m[served.CertFile] = b.cert }),
			check: "mismatch",
		},
		{
			name: "truncated fullchain.pem",
			files: with(func(m map[string][]byte) {
				m[served.FullchainFile] = m[served.FullchainFile][:len(m[served.FullchainFile])-40]
			}),
			check: "unreadable", pair: "unreadable",
		},
		{
			name:     "truncated combined.pem",
			files:    with(func(m map[string][]byte) { m[served.CombinedFile] = m[served.CombinedFile][:100] }),
			check:    "unreadable",
			combined: "unreadable",
		},
		{
			name:  "missing privkey.pem",
			files: with(func(m map[string][]byte) { delete(m, served.KeyFile) }),
			check: "unreadable", pair: "unreadable",
		},
		{
			name:     "empty combined.pem",
			files:    with(func(m map[string][]byte) { m[served.CombinedFile] = nil }),
			check:    "unreadable",
			combined: "unreadable",
		},
	}
	kind := func(err error) string {
		switch {
		case err == nil:
			return ""
		case errors.Is(err, served.ErrMismatch):
			return "mismatch"
		case errors.Is(err, served.ErrUnreadable):
			return "unreadable"
		}
		return "other: " + err.Error()
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := lineage(t, tt.files)
			for _, r := range []struct {
				name string
				read func(string) (served.Snapshot, error)
				want string
			}{
				{"Check", served.Check, tt.check},
				{"ReadPair", served.ReadPair, tt.pair},
				{"ReadCombined", served.ReadCombined, tt.combined},
			} {
				s, err := r.read(dir)
				if got := kind(err); got != r.want {
					t.Errorf("%s = %q (%v), want %q", r.name, got, err, r.want)
				}
				if err == nil && s.Serial != a.serial {
					t.Errorf("%s: serial %s, want %s", r.name, s.Serial, a.serial)
				}
				if err != nil && !strings.Contains(err.Error(), dir) {
					t.Errorf("%s: the error does not name the lineage: %v", r.name, err)
				}
			}
		})
	}
}

func TestWatch(t *testing.T) {
	a := newGeneration(t, 0x0a1)
	dir := lineage(t, a.files())
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // one read, then stop
	tl := served.Watch(ctx, dir, served.Combined, 0)
	if tl.Reads != 1 || tl.Inconsistent() != 0 || tl.Serials[a.serial] != 1 {
		t.Errorf("tally = %+v", tl)
	}

	// Break privkey.pem: a pair reader sees every read mismatched.
	if err := os.WriteFile(filepath.Join(dir, "generations", "000001", served.KeyFile), newGeneration(t, 2).key, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	tl = served.Watch(ctx, dir, served.Pair, time.Millisecond)
	if tl.Reads == 0 || tl.Mismatches != tl.Reads || tl.Unreadable != 0 || !errors.Is(tl.FirstError, served.ErrMismatch) {
		t.Errorf("tally = %+v", tl)
	}
	if got := served.Combined.String(); !strings.Contains(got, "combined.pem") {
		t.Errorf("Combined.String() = %q", got)
	}
}

func TestReloadLog(t *testing.T) {
	a := newGeneration(t, 0x0a1)
	dir := lineage(t, a.files())
	log := filepath.Join(t.TempDir(), "reloads.log")
	if rs, err := served.ReadReloads(log); err != nil || len(rs) != 0 {
		t.Fatalf("a missing log: %v, %v", rs, err)
	}
	t.Setenv("RENEWED_LINEAGE", dir)
	t.Setenv("RENEWKIT_GENERATION", "1")
	for _, serial := range []string{a.serial, "beef"} {
		t.Setenv("RENEWKIT_SERIAL", serial)
		if err := served.RecordReload(log); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := served.ReadReloads(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []served.Reload{{Serial: a.serial, Generation: "1", Verdict: "ok"}, {Serial: "beef", Generation: "1", Verdict: "served " + a.serial}}
	if fmt.Sprint(rs) != fmt.Sprint(want) {
		t.Errorf("reloads = %v, want %v", rs, want)
	}
	if m := served.ReloadedSerials(rs); m[a.serial] != 1 || m["beef"] != 1 {
		t.Errorf("ReloadedSerials = %v", m)
	}
	t.Setenv("RENEWKIT_SERIAL", "")
	if err := served.RecordReload(log); err == nil {
		t.Error("RecordReload outside a hook succeeded")
	}
}

func TestLeftovers(t *testing.T) {
	dir := lineage(t, newGeneration(t, 1).files())
	if got := served.Leftovers(dir); len(got) != 0 {
		t.Fatalf("a clean lineage has leftovers %v", got)
	}
	for _, p := range []string{".lock", "state.json"} {
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"pending.key", ".state.json123", "generations/.000002.tmp-x", "generations/junk"} {
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(served.Leftovers(dir), " ")
	if want := ".state.json123 pending.key generations/.000002.tmp-x generations/junk"; got != want {
		t.Errorf("Leftovers = %q, want %q", got, want)
	}
}

// A lineage whose privkey.pem was replaced: a web server reading the two
// files would fail to load them, and so does the check.
func Example() {
	dir, cleanup := exampleLineage()
	defer cleanup()

	if _, err := served.Check(dir); err != nil {
		fmt.Println("check:", err)
		return
	}
	fmt.Println("check: one whole generation")

	// The straddle a two-file reader can see: privkey.pem of another key.
	os.WriteFile(filepath.Join(dir, "generations", "000001", served.KeyFile), newGeneration(&exampleTB{}, 2).key, 0o600)
	_, err := served.ReadPair(dir)
	fmt.Println("nginx-style read mismatched:", errors.Is(err, served.ErrMismatch))
	_, err = served.ReadCombined(dir)
	fmt.Println("haproxy-style read whole:", err == nil)
	// Output:
	// check: one whole generation
	// nginx-style read mismatched: true
	// haproxy-style read whole: true
}

func exampleLineage() (string, func()) {
	t := &exampleTB{}
	dir := lineage(t, newGeneration(t, 1).files())
	return dir, t.cleanup
}

// exampleTB is a tb for the Example, which has no *testing.T.
type exampleTB struct{ dirs []string }

func (*exampleTB) Helper()           {}
func (*exampleTB) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

func (t *exampleTB) TempDir() string {
	d, err := os.MkdirTemp("", "served-example-")
	if err != nil {
		panic(err)
	}
	t.dirs = append(t.dirs, d)
	return d
}

func (t *exampleTB) cleanup() {
	for _, d := range t.dirs {
		os.RemoveAll(d)
	}
}

func TestSnapshotVerify(t *testing.T) {
	a, b := newGeneration(t, 0x0a1), newGeneration(t, 0x0b2)
	snap, err := served.Check(lineage(t, a.files()))
	if err != nil {
		t.Fatal(err)
	}
	pool := func(g generation) *x509.CertPool {
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(g.chain) {
			t.Fatal("chain.pem holds no certificate")
		}
		return p
	}
	if err := snap.Verify(pool(a)); err != nil {
		t.Errorf("own CA: %v", err)
	}
	if err := snap.Verify(pool(b)); !errors.Is(err, served.ErrMismatch) {
		t.Errorf("another CA: %v, want ErrMismatch", err)
	}
}
