//go:build unix

package atomicfs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/renewkit/renewkit/internal/testpki"

	servedfiles "github.com/renewkit/renewkit/internal/served"
)

// testCA issues small ECDSA certificates for the tests.
type testCA struct{ *testpki.CA }

func newTestCA() (*testCA, error) {
	ca, err := testpki.NewCA(nil, nil)
	if err != nil {
		return nil, err
	}
	return &testCA{ca}, nil
}

func mustCA(t testing.TB) *testCA {
	t.Helper()
	ca, err := newTestCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue returns a fresh key and a leaf certificate for it with the given serial.
func (ca *testCA) issue(serial int64) (Files, error) {
	leaf, err := ca.Issue(&x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "example.com"},
		DNSNames:     []string{"example.com"},
	})
	if err != nil {
		return Files{}, err
	}
	return Files{Cert: leaf.CertPEM, Chain: ca.PEM, Key: leaf.KeyPEM}, nil
}

func (ca *testCA) mustIssue(t testing.TB, serial int64) Files {
	t.Helper()
	f, err := ca.issue(serial)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkCombined parses a combined.pem (key, leaf, chain) and checks that the key
// matches the leaf. It returns the leaf's serial number.
func checkCombined(b []byte) (int64, error) {
	var blocks []*pem.Block
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return 0, fmt.Errorf("trailing garbage (%d bytes)", len(rest))
			}
			break
		}
		blocks = append(blocks, blk)
	}
	if len(blocks) != 3 || blocks[0].Type != "PRIVATE KEY" || blocks[1].Type != "CERTIFICATE" || blocks[2].Type != "CERTIFICATE" {
		return 0, fmt.Errorf("want key, leaf, chain; got %d blocks", len(blocks))
	}
	return checkPair(pem.EncodeToMemory(blocks[1]), pem.EncodeToMemory(blocks[0]))
}

// checkPair checks that keyPEM is the private key of certPEM and returns the
// certificate's serial number.
func checkPair(certPEM, keyPEM []byte) (int64, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return 0, errors.New("certificate or key is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return 0, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return 0, err
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(cert.PublicKey) {
		return 0, fmt.Errorf("key does not match certificate %d", cert.SerialNumber)
	}
	return cert.SerialNumber.Int64(), nil
}

// served reads what a server would, through the stable links, and checks that it
// is one whole generation (internal/served's Check: key matching certificate,
// fullchain and combined made of the same parts). It returns the certificate's
// serial number, or 0 and an error wrapping fs.ErrNotExist when nothing is
// served.
func served(dir string) (int64, error) {
	snap, err := servedfiles.Check(dir)
	if err != nil {
		return 0, err
	}
	return snap.Leaf.SerialNumber.Int64(), nil
}

// strayEntries lists entries of the lineage that are neither part of the layout
// nor expected: temporary files of any kind.
func strayEntries(t *testing.T, dir string) []string {
	t.Helper()
	var stray []string
	allowed := []string{".lock", "state.json", pendingKeyName, CurrentLink, generationsName, CertFile, ChainFile, FullchainFile, KeyFile, CombinedFile}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains(allowed, e.Name()) {
			stray = append(stray, e.Name())
		}
	}
	gens, err := os.ReadDir(filepath.Join(dir, generationsName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range gens {
		if _, ok := parseSeq(e.Name()); !ok {
			stray = append(stray, filepath.Join(generationsName, e.Name()))
		}
	}
	return stray
}

func mustOpen(t testing.TB, dir string) *Store {
	t.Helper()
	return mustOpenModes(t, dir, Modes{})
}

func mustOpenModes(t testing.TB, dir string, m Modes) *Store {
	t.Helper()
	s, err := Open(dir, m)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustInstallActivate(t testing.TB, s *Store, f Files) Generation {
	t.Helper()
	g, err := s.Install(f)
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	if err := s.Activate(g); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	return g
}

func seqs(gs []Generation) []int {
	out := []int{}
	for _, g := range gs {
		out = append(out, g.Seq)
	}
	return out
}
