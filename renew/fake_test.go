package renew

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/internal/testpki"
)

// fakeCA is an Issuer, Resumer and (optionally) RenewalInfoer that signs
// certificates itself. Its orders live in a directory so that a child
// process can finalize an order and the parent can resume it, like a real
// CA. Counters are per process; issued.log in the directory counts
// issuances across processes.
type fakeCA struct {
	dir      string
	lifetime time.Duration
	now      func() time.Time
	ca       *testpki.CA // also on disk, for the other processes

	mu     sync.Mutex
	fail   []error // errors returned by the next Issue calls, in order
	window *expiry.Window

	requests []IssueRequest // every Issue call's request, under mu
	resumed  []string       // the lineage name of every Resume call, under mu

	issues   atomic.Int32
	resumes  atomic.Int32
	refused  atomic.Int32 // finalizes refused: the order was finalized already
	inflight atomic.Int32
	maxConc  atomic.Int32
	ariCalls atomic.Int32 // RenewalInfo calls (ariCA)
	// afterFinalize, when set, runs after an order is finalized and before
	// Issue returns (a crash seam for child processes).
	afterFinalize func()
	// afterJournal, when set, runs after the journal returned and before
	// block is waited for (the order is ready, not finalized).
	afterJournal func()
	// block, when set, is received from before finalizing.
	block chan struct{}
}

func newFakeCA(t testing.TB, dir string) *fakeCA {
	t.Helper()
	ca, err := loadFakeCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// loadFakeCA opens the CA in dir, creating its key on first use.
func loadFakeCA(dir string) (*fakeCA, error) {
	if err := os.MkdirAll(filepath.Join(dir, "orders"), 0o755); err != nil {
		return nil, err
	}
	ca := &fakeCA{dir: dir, lifetime: 90 * 24 * time.Hour, now: time.Now}
	keyPath := filepath.Join(dir, "ca.key")
	if b, err := os.ReadFile(keyPath); err == nil {
		blk, _ := pem.Decode(b)
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		cb, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		if err != nil {
			return nil, err
		}
		cblk, _ := pem.Decode(cb)
		cert, err := x509.ParseCertificate(cblk.Bytes)
		if err != nil {
			return nil, err
		}
		ca.ca = &testpki.CA{Key: k, Cert: cert, PEM: cb}
		return ca, nil
	}
	c, err := testpki.NewCA(&x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "fake CA"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
	}, nil)
	if err != nil {
		return nil, err
	}
	ca.ca = c
	kb, _ := x509.MarshalECPrivateKey(c.Key)
	if err := os.WriteFile(keyPath+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), c.PEM, 0o644); err != nil {
		return nil, err
	}
	return ca, os.Rename(keyPath+".tmp", keyPath)
}

func (ca *fakeCA) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.ca.Cert)
	return p
}

// failNext makes the next Issue calls fail with errs, in order.
func (ca *fakeCA) failNext(errs ...error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.fail = append(ca.fail, errs...)
}

// issuedCount counts certificates issued across processes.
func (ca *fakeCA) issuedCount() int {
	b, _ := os.ReadFile(filepath.Join(ca.dir, "issued.log"))
	return strings.Count(string(b), "\n")
}

func (ca *fakeCA) Issue(ctx context.Context, req IssueRequest, journal func(ctx context.Context, rec InFlight) error) (*Issued, error) {
	n := ca.inflight.Add(1)
	defer ca.inflight.Add(-1)
	for {
		m := ca.maxConc.Load()
		if n <= m || ca.maxConc.CompareAndSwap(m, n) {
			break
		}
	}
	ca.mu.Lock()
	ca.requests = append(ca.requests, req)
	var injected error
	if len(ca.fail) > 0 {
		injected, ca.fail = ca.fail[0], ca.fail[1:]
	}
	ca.mu.Unlock()
	if injected != nil {
		return nil, injected
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%d-%d", os.Getpid(), ca.issues.Add(1))
	rec := InFlight{OrderURL: "fake://order/" + id, Domains: req.Domains, Created: ca.now()}
	// The order is ready: orders/ID.ready until it is finalized.
	if err := os.WriteFile(ca.orderFile(id, ".ready"), nil, 0o644); err != nil {
		return nil, err
	}
	if err := journal(ctx, rec); err != nil {
		return nil, err
	}
	if ca.afterJournal != nil {
		ca.afterJournal()
	}
	if ca.block != nil {
		select {
		case <-ca.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	certPEM, fresh, err := ca.finalize(id, req.Key.Public(), req.Domains)
	if err != nil {
		return nil, err
	}
	if fresh && ca.afterFinalize != nil {
		ca.afterFinalize()
	}
	// Refused because another process finalized the order meanwhile (a
	// Resume of the journaled order): collect that order's certificate, as
	// acmeissuer does; the Renewer checks it is for req.Key.
	return ca.issued(rec.OrderURL, certPEM)
}

// orderFile is the file of order id with suffix (".ready", ".pem").
func (ca *fakeCA) orderFile(id, suffix string) string {
	return filepath.Join(ca.dir, "orders", id+suffix)
}

// finalize finalizes order id for pub, once per order as a CA does: the
// first finalize issues (fresh) and remembers the certificate; a later one
// is refused (orderNotReady) and returns the certificate the order has. The
// certificate is linked into place, so that the first of two processes
// finalizing at once wins.
func (ca *fakeCA) finalize(id string, pub crypto.PublicKey, domains []string) (certPEM []byte, fresh bool, err error) {
	certPEM, err = ca.sign(pub, domains)
	if err != nil {
		return nil, false, err
	}
	final := ca.orderFile(id, ".pem")
	tmp, err := os.CreateTemp(filepath.Dir(final), id+".tmp*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(certPEM)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, err
	}
	if err := os.Link(tmp.Name(), final); errors.Is(err, fs.ErrExist) {
		ca.refused.Add(1)
		certPEM, err = os.ReadFile(final)
		return certPEM, false, err
	} else if err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(filepath.Join(ca.dir, "issued.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, err
	}
	fmt.Fprintln(f, id)
	return certPEM, true, f.Close()
}

// Resume downloads a finalized order's certificate; a ready one it
// finalizes with rec.Key (ErrOrderGone without one), as acmeissuer does.
func (ca *fakeCA) Resume(ctx context.Context, rec InFlight) (*Issued, error) {
	ca.resumes.Add(1)
	ca.mu.Lock()
	ca.resumed = append(ca.resumed, rec.Name)
	ca.mu.Unlock()
	id := strings.TrimPrefix(rec.OrderURL, "fake://order/")
	certPEM, err := os.ReadFile(ca.orderFile(id, ".pem"))
	if errors.Is(err, os.ErrNotExist) {
		if _, rerr := os.Stat(ca.orderFile(id, ".ready")); rerr != nil {
			return nil, fmt.Errorf("order %s: %w", rec.OrderURL, ErrOrderGone)
		}
		if rec.Key == nil {
			return nil, fmt.Errorf("order %s is ready and there is no key to finalize it with: %w", rec.OrderURL, ErrOrderGone)
		}
		certPEM, _, err = ca.finalize(id, rec.Key.Public(), rec.Domains)
	}
	if err != nil {
		return nil, err
	}
	return ca.issued(rec.OrderURL, certPEM)
}

func (ca *fakeCA) issued(url string, certPEM []byte) (*Issued, error) {
	blk, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: certPEM, Chain: ca.ca.PEM, Leaf: leaf, OrderURL: url}, nil
}

func (ca *fakeCA) sign(pub crypto.PublicKey, domains []string) ([]byte, error) {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	now := ca.now()
	var dns []string
	var ips []net.IP
	for _, d := range domains {
		d = strings.TrimSuffix(d, ".") // as a CA does: identifiers have no trailing dot
		if ip := net.ParseIP(d); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, d)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ca.lifetime),
		DNSNames:     dns,
		IPAddresses:  ips,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	_, certPEM, err := ca.ca.Sign(tmpl, pub)
	return certPEM, err
}

// ariCA is a fakeCA that speaks ARI.
type ariCA struct{ *fakeCA }

func (a ariCA) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (expiry.Window, error) {
	a.ariCalls.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.window == nil {
		return expiry.Window{}, errors.ErrUnsupported
	}
	return *a.window, nil
}
