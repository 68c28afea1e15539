// Package served reads the files a renewkit lineage serves the way web
// servers read them, and checks that what was read belongs together. It is
// the judge of renewkit's crash suite (package crashtest) and of the
// roulette example: both kill renewals at random and ask this package what
// a web server would have loaded at that instant.
//
// A lineage directory serves five stable links (cert.pem, chain.pem,
// fullchain.pem, privkey.pem, combined.pem) that resolve through current to
// one generation. Three ways of reading them are offered:
//
//   - [Check] reads all five, one after the other, and demands one whole
//     generation: the key matches the certificate, fullchain.pem is cert.pem
//     followed by chain.pem, combined.pem is the key followed by the full
//     chain. Use it when no renewal is running (after a kill, after a run).
//   - [ReadPair] reads fullchain.pem, then privkey.pem, by path, as nginx
//     (ssl_certificate, ssl_certificate_key) and most servers do at reload.
//     A reader that does this while a renewal swaps current can get the
//     certificate of one generation and the key of the next: a straddle,
//     reported as [ErrMismatch]. Only the swap itself opens that window.
//   - [ReadCombined] reads combined.pem, one file, as HAProxy (crt) does. It
//     cannot straddle: any [ErrMismatch] from it is a broken promise.
//
// Anything that cannot be read or parsed (a missing file, half a file) is
// [ErrUnreadable]: for a lineage that served a certificate before, that is a
// broken promise whichever way the files were read.
//
// The package only reads; it is safe for concurrent use and has no state.
package served

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The stable links of a lineage, as web servers are configured with them.
// They are written out here rather than taken from atomicfs, which owns the
// layout: this package is the test oracle for atomicfs (whose own tests
// import it), and an oracle that read the names through the code under test
// would not notice that code changing them. TestNamesMatchAtomicfs holds
// the two together.
const (
	CertFile      = "cert.pem"
	ChainFile     = "chain.pem"
	FullchainFile = "fullchain.pem"
	KeyFile       = "privkey.pem"
	CombinedFile  = "combined.pem"
)

// Files returns the names of the five stable links, in the order [Check]
// reads them.
func Files() []string {
	return []string{CertFile, ChainFile, FullchainFile, KeyFile, CombinedFile}
}

// Errors. Every error returned by this package wraps exactly one of them.
var (
	// ErrMismatch: the files read are each whole but do not belong to one
	// generation (a key that is not the certificate's, a fullchain.pem whose
	// leaf is not cert.pem's, ...).
	ErrMismatch = errors.New("served files do not belong together")
	// ErrUnreadable: a file is missing, unreadable, or not whole PEM of the
	// expected kind (which is how half a file shows).
	ErrUnreadable = errors.New("served file unreadable")
)

// Snapshot describes the generation a read found.
type Snapshot struct {
	// Serial is the leaf's serial number in lower-case hex without leading
	// zeros: the form of renewkit's RENEWKIT_SERIAL hook variable.
	Serial string
	// Leaf is the parsed leaf certificate.
	Leaf *x509.Certificate
	// Chain holds the DER certificates after the leaf (fullchain order).
	Chain [][]byte
}

// NotAfter is the leaf's expiry.
func (s Snapshot) NotAfter() time.Time { return s.Leaf.NotAfter }

// Verify checks that the leaf chains to roots through the snapshot's chain
// certificates, at the current time.
func (s Snapshot) Verify(roots *x509.CertPool) error {
	inter := x509.NewCertPool()
	for _, der := range s.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%w: chain: %w", ErrUnreadable, err)
		}
		inter.AddCert(c)
	}
	if _, err := s.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return fmt.Errorf("%w: serial %s: %w", ErrMismatch, s.Serial, err)
	}
	return nil
}

// Serial formats a certificate serial number the way [Snapshot.Serial] does.
func Serial(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }

func unreadable(dir, file string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnreadable, filepath.Join(dir, file), err)
}

func mismatch(dir, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMismatch, dir, fmt.Sprintf(format, args...))
}

// read reads one stable link of dir.
func read(dir, file string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, unreadable(dir, file, err)
	}
	return b, nil
}

// certs decodes every CERTIFICATE block of data, demanding that nothing but
// whitespace and such blocks (and, when allowKey, one private key block)
// is in it: a truncated file fails here.
func certs(dir, file string, data []byte, allowKey bool) (ders [][]byte, keyBlock []byte, err error) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			ders = append(ders, b.Bytes)
		case allowKey && strings.HasSuffix(b.Type, "PRIVATE KEY") && keyBlock == nil:
			keyBlock = pem.EncodeToMemory(b)
		default:
			return nil, nil, unreadable(dir, file, fmt.Errorf("unexpected PEM block %q", b.Type))
		}
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, nil, unreadable(dir, file, fmt.Errorf("%d bytes that are not PEM (a truncated file?)", len(bytes.TrimSpace(rest))))
	}
	return ders, keyBlock, nil
}

// pair checks that keyPEM is the private key of the first certificate of
// chain and returns the snapshot.
func pair(dir, what string, chain [][]byte, keyPEM []byte) (Snapshot, error) {
	if len(chain) == 0 {
		return Snapshot{}, unreadable(dir, what, errors.New("no certificate"))
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return Snapshot{}, unreadable(dir, what, err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0]})
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return Snapshot{}, mismatch(dir, "%s: the private key is not the certificate's (serial %s)", what, Serial(leaf))
		}
		return Snapshot{}, unreadable(dir, what, err)
	}
	return Snapshot{Serial: Serial(leaf), Leaf: leaf, Chain: chain[1:]}, nil
}

// ReadPair reads dir's fullchain.pem and then its privkey.pem, by path, the
// way nginx loads ssl_certificate and ssl_certificate_key, and checks that
// the key is the certificate's. A straddle of a concurrent swap is
// reported as [ErrMismatch].
func ReadPair(dir string) (Snapshot, error) {
	full, err := read(dir, FullchainFile)
	if err != nil {
		return Snapshot{}, err
	}
	key, err := read(dir, KeyFile)
	if err != nil {
		return Snapshot{}, err
	}
	chain, _, err := certs(dir, FullchainFile, full, false)
	if err != nil {
		return Snapshot{}, err
	}
	if err := onlyKey(dir, key); err != nil {
		return Snapshot{}, err
	}
	return pair(dir, FullchainFile+" + "+KeyFile, chain, key)
}

// onlyKey checks that privkey.pem holds one whole private key block.
func onlyKey(dir string, key []byte) error {
	b, rest := pem.Decode(key)
	if b == nil || !strings.HasSuffix(b.Type, "PRIVATE KEY") {
		return unreadable(dir, KeyFile, errors.New("no PEM private key"))
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return unreadable(dir, KeyFile, errors.New("trailing data after the key"))
	}
	return nil
}

// ReadCombined reads dir's combined.pem, one file, the way HAProxy loads a
// crt: the private key and the full chain. It checks that the key is the
// leaf's.
func ReadCombined(dir string) (Snapshot, error) {
	data, err := read(dir, CombinedFile)
	if err != nil {
		return Snapshot{}, err
	}
	chain, key, err := certs(dir, CombinedFile, data, true)
	if err != nil {
		return Snapshot{}, err
	}
	if key == nil {
		return Snapshot{}, unreadable(dir, CombinedFile, errors.New("no private key"))
	}
	return pair(dir, CombinedFile, chain, key)
}

// Check reads all five served files of the lineage in dir and checks that
// they are one whole generation: the key is the certificate's, fullchain.pem
// is cert.pem followed by chain.pem, and combined.pem is privkey.pem's key
// followed by fullchain.pem's certificates. Use it while no renewal runs.
func Check(dir string) (Snapshot, error) {
	data := make(map[string][]byte, len(Files()))
	for _, f := range Files() {
		b, err := read(dir, f)
		if err != nil {
			return Snapshot{}, err
		}
		data[f] = b
	}
	leaf, _, err := certs(dir, CertFile, data[CertFile], false)
	if err != nil {
		return Snapshot{}, err
	}
	if len(leaf) != 1 {
		return Snapshot{}, unreadable(dir, CertFile, fmt.Errorf("%d certificates, want 1", len(leaf)))
	}
	chain, _, err := certs(dir, ChainFile, data[ChainFile], false)
	if err != nil {
		return Snapshot{}, err
	}
	full, _, err := certs(dir, FullchainFile, data[FullchainFile], false)
	if err != nil {
		return Snapshot{}, err
	}
	if err := onlyKey(dir, data[KeyFile]); err != nil {
		return Snapshot{}, err
	}
	comb, combKey, err := certs(dir, CombinedFile, data[CombinedFile], true)
	if err != nil {
		return Snapshot{}, err
	}
	if len(full) == 0 {
		return Snapshot{}, unreadable(dir, FullchainFile, errors.New("no certificate"))
	}
	if len(comb) == 0 || combKey == nil {
		return Snapshot{}, unreadable(dir, CombinedFile, errors.New("no certificate or no private key"))
	}
	if want := append(slices.Clone(leaf), chain...); !equalDER(full, want) {
		return Snapshot{}, mismatch(dir, "%s is not %s followed by %s", FullchainFile, CertFile, ChainFile)
	}
	if !equalDER(comb, full) {
		return Snapshot{}, mismatch(dir, "the certificates of %s are not those of %s", CombinedFile, FullchainFile)
	}
	if !bytes.Equal(bytes.TrimSpace(combKey), bytes.TrimSpace(data[KeyFile])) {
		return Snapshot{}, mismatch(dir, "the key in %s is not %s", CombinedFile, KeyFile)
	}
	return pair(dir, CertFile+" + "+KeyFile, full, data[KeyFile])
}

func equalDER(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

// Kind is a way of reading the served files.
type Kind int

// Kinds of readers.
const (
	// Pair reads fullchain.pem then privkey.pem ([ReadPair]), like nginx.
	Pair Kind = iota
	// Combined reads combined.pem ([ReadCombined]), like HAProxy.
	Combined
)

func (k Kind) String() string {
	switch k {
	case Pair:
		return "nginx (fullchain.pem, then privkey.pem)"
	case Combined:
		return "haproxy (combined.pem)"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Read reads dir the way k does.
func (k Kind) Read(dir string) (Snapshot, error) {
	if k == Combined {
		return ReadCombined(dir)
	}
	return ReadPair(dir)
}

// Tally counts what a [Watch] saw.
type Tally struct {
	Kind Kind
	// Reads is the number of reads.
	Reads int
	// Mismatches counts reads that failed with ErrMismatch.
	Mismatches int
	// Unreadable counts reads that failed with ErrUnreadable.
	Unreadable int
	// FirstError is the first failed read's error (nil if none failed).
	FirstError error
	// Serials are the serial numbers of the generations read whole, with how
	// often each was seen.
	Serials map[string]int
}

// Inconsistent is the number of failed reads.
func (t Tally) Inconsistent() int { return t.Mismatches + t.Unreadable }

// Watch reads dir the way kind does, once and then again and again until
// ctx ends, and returns what it saw. pause is waited between reads (zero:
// none), so that a watcher leaves CPU to the process it watches.
func Watch(ctx context.Context, dir string, kind Kind, pause time.Duration) Tally {
	t := Tally{Kind: kind, Serials: map[string]int{}}
	for first := true; first || ctx.Err() == nil; first = false {
		s, err := kind.Read(dir)
		t.Reads++
		switch {
		case err == nil:
			t.Serials[s.Serial]++
		case errors.Is(err, ErrMismatch):
			t.Mismatches++
		default:
			t.Unreadable++
		}
		if err != nil && t.FirstError == nil {
			t.FirstError = err
		}
		if pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}
	return t
}
