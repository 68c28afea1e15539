package metrics_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/testpki"
	"github.com/renewkit/renewkit/metrics"
	"github.com/renewkit/renewkit/renew"
)

// fakeIssuer signs certificates with its own CA. Each Issue call takes the
// next error from fail (nil: issue).
type fakeIssuer struct {
	ca     *testpki.CA
	serial int64

	mu   sync.Mutex
	fail map[string][]error // by lineage name
}

var _ renew.Issuer = (*fakeIssuer)(nil)

func newFakeIssuer(t *testing.T) *fakeIssuer {
	t.Helper()
	ca, err := testpki.NewCA(&x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeIssuer{ca: ca, serial: 100, fail: map[string][]error{}}
}

func (f *fakeIssuer) Issue(ctx context.Context, req renew.IssueRequest, journal func(ctx context.Context, rec renew.InFlight) error) (*renew.Issued, error) {
	f.mu.Lock()
	var err error
	if q := f.fail[req.Name]; len(q) > 0 {
		err, f.fail[req.Name] = q[0], q[1:]
	}
	f.serial++
	serial := f.serial
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	rec := renew.InFlight{OrderURL: fmt.Sprintf("fake://order/%d", serial), Domains: req.Domains, Created: time.Now()}
	if err := journal(ctx, rec); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: req.Domains[0]}, DNSNames: req.Domains,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leaf, certPEM, err := f.ca.Sign(tmpl, req.Key.Public())
	if err != nil {
		return nil, backoff.Permanent(err)
	}
	return &renew.Issued{Cert: certPEM, Chain: f.ca.PEM, Leaf: leaf, OrderURL: rec.OrderURL}, nil
}

// TestRenewerObserver runs a real Renewer with the Collector as its
// Observer: a renewal after one transient failure, a no-op run, a lineage
// whose CA refuses, and the textfile of it all.
func TestRenewerObserver(t *testing.T) {
	t.Parallel()
	iss := newFakeIssuer(t)
	iss.fail["web"] = []error{backoff.Transient(errors.New("503 from CA"))}
	iss.fail["bad"] = []error{backoff.Permanent(errors.New("rejectedIdentifier"))}

	reg := prometheus.NewPedanticRegistry()
	c := metrics.New()
	reg.MustRegister(c)
	r := &renew.Renewer{
		Root:     t.TempDir(),
		Issuer:   iss,
		Observer: c,
		Retry:    backoff.Policy{Retries: 2, Initial: time.Millisecond, Max: time.Millisecond},
	}
	certs := []renew.Certificate{
		{Name: "web", Domains: []string{"example.com", "www.example.com"}},
		{Name: "bad", Domains: []string{"bad.example"}},
	}
	c.Track(certs...)

	ctx := t.Context()
	res := r.Run(ctx, certs...)
	if res[0].Outcome != renew.Renewed || res[1].Outcome != renew.Failed {
		t.Fatalf("first run: %v; %v", res[0], res[1])
	}
	res = r.Run(ctx, certs...)
	if res[0].Outcome != renew.NotDue {
		t.Fatalf("second run: %v", res[0])
	}

	runs := `# HELP renewkit_renewal_runs_total Renewal runs of the lineage observed by this process, by outcome.
# TYPE renewkit_renewal_runs_total counter
renewkit_renewal_runs_total{name="bad",outcome="backing_off"} 1
renewkit_renewal_runs_total{name="bad",outcome="failed"} 1
renewkit_renewal_runs_total{name="web",outcome="not_due"} 1
renewkit_renewal_runs_total{name="web",outcome="renewed"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(runs), "renewkit_renewal_runs_total"); err != nil {
		t.Error(err)
	}
	attempts := `# HELP renewkit_issuance_attempts_total Certificate issuance attempts (ACME orders, new or resumed) of the lineage observed by this process, by result: success when the attempt obtained the certificate the run installed.
# TYPE renewkit_issuance_attempts_total counter
renewkit_issuance_attempts_total{name="bad",result="error"} 1
renewkit_issuance_attempts_total{name="web",result="error"} 1
renewkit_issuance_attempts_total{name="web",result="success"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(attempts), "renewkit_issuance_attempts_total"); err != nil {
		t.Error(err)
	}

	// The gauges agree with what Status reads from disk.
	st := r.Status(certs...)
	check := func(when string) {
		t.Helper()
		gauge := func(name, lineage string) (float64, bool) {
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() != name {
					continue
				}
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "name" && l.GetValue() == lineage {
							return m.GetGauge().GetValue(), true
						}
					}
				}
			}
			return 0, false
		}
		if v, _ := gauge("renewkit_certificate_not_after_timestamp_seconds", "web"); v != float64(st[0].NotAfter.Unix()) {
			t.Errorf("%s: web not_after %v, want %v", when, v, st[0].NotAfter.Unix())
		}
		if v, _ := gauge("renewkit_certificate_renew_at_timestamp_seconds", "web"); v != float64(st[0].RenewAt.UnixMilli())/1e3 {
			t.Errorf("%s: web renew_at %v, want %v", when, v, st[0].RenewAt)
		}
		if _, ok := gauge("renewkit_certificate_not_after_timestamp_seconds", "bad"); ok {
			t.Errorf("%s: bad has a not_after but no certificate", when)
		}
		if v, _ := gauge("renewkit_renewal_consecutive_failures", "bad"); v != 1 {
			t.Errorf("%s: bad failures %v, want 1", when, v)
		}
		if v, _ := gauge("renewkit_renewal_retry_not_before_timestamp_seconds", "bad"); v != float64(st[1].RetryNotBefore.UnixMilli())/1e3 {
			t.Errorf("%s: bad retry_not_before %v, want %v", when, v, st[1].RetryNotBefore)
		}
		if v, ok := gauge("renewkit_renewal_last_run_ok", "bad"); !ok || v != 0 {
			t.Errorf("%s: bad last_run_ok %v (present %v), want 0 (backing off)", when, v, ok)
		}
	}
	check("from results")
	c.ObserveStatus(st...)
	check("after ObserveStatus")

	path := filepath.Join(t.TempDir(), "renewkit.prom")
	if err := metrics.WriteTextfile(path, reg); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Errorf("gather: %d series, %v", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
