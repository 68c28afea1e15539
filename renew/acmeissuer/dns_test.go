package acmeissuer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/lockfile"
	"github.com/renewkit/renewkit/renew"
)

// replacingProvider publishes DNS-01 values on a testacme responder the way
// lego's rfc2136 provider does on a real nameserver: Present replaces the
// whole TXT record set, CleanUp removes only its own value, and it declares
// itself Sequential. It records how many values of one name were presented
// at once, across every Issuer that uses it.
type replacingProvider struct {
	d *testacme.DNSResponder

	mu        sync.Mutex
	active    map[string]int
	maxActive int
}

func newReplacingProvider(d *testacme.DNSResponder) *replacingProvider {
	return &replacingProvider{d: d, active: make(map[string]int)}
}

func (p *replacingProvider) Present(_ context.Context, domain, _, keyAuth string) error {
	name, value := dns01Record(domain, keyAuth)
	p.mu.Lock()
	p.active[name]++
	p.maxActive = max(p.maxActive, p.active[name])
	p.mu.Unlock()
	p.d.SetTXT(name, value)
	return nil
}

func (p *replacingProvider) CleanUp(_ context.Context, domain, _, keyAuth string) error {
	name, value := dns01Record(domain, keyAuth)
	p.d.RemoveTXT(name, value)
	p.mu.Lock()
	p.active[name]--
	p.mu.Unlock()
	return nil
}

func (p *replacingProvider) Sequential() time.Duration { return time.Millisecond }

func (p *replacingProvider) maxAtOnce() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxActive
}

// dnsConfig is a DNS-01-only Config for ca with provider p and a short
// propagation timeout (a value that was overwritten never shows up).
func dnsConfig(t *testing.T, ca *testacme.Server, p *replacingProvider) Config {
	cfg := testConfig(t, ca)
	cfg.HTTP01 = nil
	cfg.DNS01 = &DNS01{Provider: p, Resolvers: []string{ca.DNSAddr()}, PropagationTimeout: 3 * time.Second, PropagationInterval: 10 * time.Millisecond}
	return cfg
}

// issueErr is Issue with a fresh key and a journal, safe from any goroutine.
func issueErr(iss *Issuer, name string, domains ...string) error {
	key, err := renew.EC256.Generate()
	if err != nil {
		return err
	}
	j := &memJournal{}
	_, err = iss.Issue(context.Background(), renew.IssueRequest{Name: name, Domains: domains, Key: key, Profile: "default"}, j.journal)
	return err
}

// TestWildcardAndApexWithReplacingProvider reproduces issue 17 item 1: a
// wildcard and its base name share _acme-challenge.NAME; a provider that
// replaces the record set wiped the first value when all challenges were
// presented at once, and the order failed with "not visible".
func TestWildcardAndApexWithReplacingProvider(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	p := newReplacingProvider(ca.DNS())
	iss := newTestIssuer(t, dnsConfig(t, ca, p))
	base := domain("wild")
	issue(t, iss, renew.IssueRequest{Domains: []string{"*." + base, base}, Profile: "default"})
	if n := p.maxAtOnce(); n != 1 {
		t.Errorf("%d values of one record name presented at once, want 1", n)
	}
	if v := ca.DNS().TXT("_acme-challenge." + base); len(v) != 0 {
		t.Errorf("TXT record left behind: %v", v)
	}
}

// TestSharedRecordConcurrentOrders reproduces issue 17 item 2 within one
// Issuer: two certificates whose names share a record, ordered at once.
func TestSharedRecordConcurrentOrders(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	p := newReplacingProvider(ca.DNS())
	iss := newTestIssuer(t, dnsConfig(t, ca, p))
	base := domain("shared")
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for k, ds := range [][]string{{base}, {"*." + base}} {
		wg.Go(func() { errs[k] = issueErr(iss, ds[0], ds...) })
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Errorf("order %d: %v", k, err)
		}
	}
	if n := p.maxAtOnce(); n != 1 {
		t.Errorf("%d values of one record name presented at once, want 1", n)
	}
}

// TestSharedRecordLockDirAcrossIssuers: Issuers that share DNS01.LockDir
// (as processes on one machine do) never present under one name at once.
func TestSharedRecordLockDirAcrossIssuers(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	p := newReplacingProvider(ca.DNS())
	lockDir := filepath.Join(t.TempDir(), ".dns-locks")
	base := domain("lockdir")
	var issuers []*Issuer
	for range 2 {
		cfg := dnsConfig(t, ca, p)
		cfg.DNS01.LockDir = lockDir
		issuers = append(issuers, newTestIssuer(t, cfg))
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for k, ds := range [][]string{{base, "www." + base}, {"*." + base}} {
		wg.Go(func() { errs[k] = issueErr(issuers[k], ds[0], ds...) })
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Errorf("order %d: %v", k, err)
		}
	}
	if n := p.maxAtOnce(); n != 1 {
		t.Errorf("%d values of one record name presented at once, want 1", n)
	}
	fi, err := os.Stat(filepath.Join(lockDir, "_acme-challenge."+base+".lock"))
	if err != nil {
		t.Fatalf("record lock file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestRecordLocksWaitHonoursContext: a lock held elsewhere is waited for,
// and the wait ends with ctx; released, it is taken at once.
func TestRecordLocksWaitHonoursContext(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		l := &recordLocks{dir: dir}
		other := &recordLocks{dir: dir} // another Issuer (or process)
		log := testLogger(t)
		unlock, err := l.lock(t.Context(), []string{"_acme-challenge.b.example.", "_acme-challenge.a.example."}, log)
		if err != nil {
			t.Fatal(err)
		}
		for _, ll := range []*recordLocks{l, other} {
			if dir == "" && ll == other {
				continue // without a directory only one Issuer is covered
			}
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			_, err = ll.lock(ctx, []string{"_acme-challenge.a.example"}, log)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("dir %q: lock of a held name: err = %v, want the context's", dir, err)
			}
		}
		unlock()
		unlock() // idempotent
		u2, err := other.lock(t.Context(), []string{"_acme-challenge.a.example."}, log)
		if err != nil {
			t.Fatalf("dir %q: after unlock: %v", dir, err)
		}
		u2()
		if len(l.sems) != 0 {
			t.Errorf("in-process lock table not emptied: %v", l.sems)
		}
	}
}

func TestRecordLockName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"_acme-challenge.example.org", "_acme-challenge.example.org.lock"},
		{"../../etc/passwd", ""},
		{".hidden", ""},
		{"a/b", ""},
	} {
		got := recordLockName(tt.in)
		if tt.want != "" && got != tt.want {
			t.Errorf("recordLockName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if tt.want == "" && (!strings.HasPrefix(got, "sha256-") || strings.ContainsAny(got, "/")) {
			t.Errorf("recordLockName(%q) = %q, want a hashed name", tt.in, got)
		}
	}
}

// TestPropagationNamesOtherValues: issue 17 item 4. A record present with
// other values is reported with those values, saying which are ours.
func TestPropagationNamesOtherValues(t *testing.T) {
	d, err := testacme.StartDNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	const name = "_acme-challenge.x.example."
	d.SetTXT(name, "theirs", "mine-too")
	var ours ourValues
	ours.add("mine-too", `the challenge for *.x.example of certificate "w"`)
	pr := &propagation{resolvers: []string{d.Addr()}, timeout: 30 * time.Millisecond, interval: 10 * time.Millisecond}
	err = pr.wait(t.Context(), []txtRecord{{domain: "x.example", fqdn: name, value: "wanted"}}, ours.describe)
	if !errors.Is(err, errNotPropagated) {
		t.Fatalf("err = %v, want errNotPropagated", err)
	}
	for _, want := range []string{`other values instead of ours ("wanted")`, `"theirs" (not one of this issuer's challenges`, `"mine-too" (ours: the challenge for *.x.example of certificate "w", presented now)`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
	ours.remove("mine-too")
	if got := ours.describe("mine-too"); !strings.Contains(got, "already withdrawn") {
		t.Errorf("describe after remove = %q", got)
	}
}

// localFailProvider refuses every Present as a local problem, the way the
// CLI's rfc2136 provider reports a TSIG key the nameserver rejects.
type localFailProvider struct{ presents int }

func (p *localFailProvider) Present(context.Context, string, string, string) error {
	p.presents++
	return &renew.LocalError{What: "rfc2136 nameserver 127.0.0.1:53", Err: errors.New("TSIG: bad signature"), Fix: "check env.RFC2136_TSIG_SECRET"}
}

func (p *localFailProvider) CleanUp(context.Context, string, string, string) error { return nil }

// TestPresentLocalErrorIsPermanent: issue 17 item 3. A provider's local
// failure stays a *renew.LocalError, is permanent (no retry, no CA backoff
// in renew) and costs one order, not four.
func TestPresentLocalErrorIsPermanent(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	p := &localFailProvider{}
	cfg := testConfig(t, ca)
	cfg.HTTP01 = nil
	cfg.DNS01 = &DNS01{Provider: p, Resolvers: []string{ca.DNSAddr()}}
	iss := newTestIssuer(t, cfg)
	err := issueErr(iss, "l", domain("local"))
	var le *renew.LocalError
	if !errors.Is(err, renew.ErrLocal) || !errors.Is(err, backoff.ErrPermanent) || !errors.As(err, &le) {
		t.Fatalf("err = %v, want a permanent renew.LocalError", err)
	}
	if !strings.Contains(err.Error(), "env.RFC2136_TSIG_SECRET") {
		t.Errorf("err = %v, want the fix", err)
	}
	if p.presents != 1 || ca.Stats().Orders != 1 {
		t.Errorf("%d presents, %d orders, want 1 and 1", p.presents, ca.Stats().Orders)
	}
	// The CA has an order: renew must count this failure, or a credential
	// the preflight cannot check would cost an order every few minutes.
	if !le.Ordered {
		t.Errorf("the LocalError found after ordering is not marked Ordered: %v", err)
	}
}

func TestRounds(t *testing.T) {
	dnsS, httpS := solver{typ: challenge.DNS01}, solver{typ: challenge.HTTP01}
	mk := func(s solver, ident, fqdn string) *presented { return &presented{ident: ident, solver: s, fqdn: fqdn} }
	apex := mk(dnsS, "example.org", "_acme-challenge.example.org.")
	wild := mk(dnsS, "example.org", "_acme-challenge.example.org.")
	www := mk(dnsS, "www.example.org", "_acme-challenge.www.example.org.")
	h1 := mk(httpS, "a.example.org", "")
	h2 := mk(httpS, "b.example.org", "")
	got := rounds([]*presented{apex, h1, wild, www, h2})
	want := [][]*presented{{apex, h1, www, h2}, {wild}}
	if len(got) != len(want) {
		t.Fatalf("%d rounds, want %d", len(got), len(want))
	}
	for k := range want {
		if len(got[k]) != len(want[k]) {
			t.Fatalf("round %d has %d challenges, want %d", k, len(got[k]), len(want[k]))
		}
		for j := range want[k] {
			if got[k][j] != want[k][j] {
				t.Errorf("round %d challenge %d: got %s, want %s", k, j, got[k][j].ident, want[k][j].ident)
			}
		}
	}
}

type legoSequential struct{ *localFailProvider }

func (legoSequential) Sequential() (bool, time.Duration) { return true, 7 * time.Second }

func TestSequenceInterval(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    *DNS01
		want time.Duration
		ok   bool
	}{
		{"none", nil, 0, false},
		{"appending provider", &DNS01{Provider: &localFailProvider{}}, 0, false},
		{"provider's Sequential() time.Duration", &DNS01{Provider: &replacingProvider{}}, time.Millisecond, true},
		{"resolver's Sequential() (bool, time.Duration)", &DNS01{Provider: legoSequential{&localFailProvider{}}}, 7 * time.Second, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := sequenceInterval(tt.d)
			if got != tt.want || ok != tt.ok {
				t.Errorf("sequenceInterval = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// slowCleanupProvider presents nothing, cancels the order's context once
// its value is "presented" (a signal mid-order), and takes a while to clean
// up, as a DNS API does.
type slowCleanupProvider struct {
	cancel  context.CancelFunc
	cleaned atomic.Int32 // clean-ups that finished
	cut     atomic.Int32 // clean-ups whose context ended first
}

func (p *slowCleanupProvider) Present(context.Context, string, string, string) error {
	p.cancel()
	return nil
}

func (p *slowCleanupProvider) CleanUp(ctx context.Context, _, _, _ string) error {
	select {
	case <-ctx.Done():
		p.cut.Add(1)
		return ctx.Err()
	case <-time.After(200 * time.Millisecond): // the API's own latency
		p.cleaned.Add(1)
		return nil
	}
}

// TestCloseWaitsForDNSCleanup: an order stopped by a signal hands its DNS-01
// clean-up to the background; Close used to cancel it, leaving the TXT
// records at the provider (where an appending provider piles them up).
func TestCloseWaitsForDNSCleanup(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &slowCleanupProvider{cancel: cancel}
	cfg := testConfig(t, ca)
	cfg.HTTP01 = nil
	cfg.DNS01 = &DNS01{Provider: p, Resolvers: []string{ca.DNSAddr()}}
	iss := newTestIssuer(t, cfg)
	key := mustKey(t, renew.EC256)
	j := &memJournal{}
	if _, err := iss.Issue(ctx, renew.IssueRequest{Name: "stopped", Domains: []string{domain("stopped")}, Key: key, Profile: "default"}, j.journal); err == nil {
		t.Fatal("Issue succeeded although its context was cancelled")
	}
	if err := iss.Close(); err != nil {
		t.Fatal(err)
	}
	if p.cleaned.Load() != 1 || p.cut.Load() != 0 {
		t.Fatalf("after Close: %d clean-ups finished, %d cut short; want 1 and 0", p.cleaned.Load(), p.cut.Load())
	}
}

// TestRecordLockWaitIsBounded: a process stopped while holding a record's
// lock (SIGSTOP, a frozen cgroup) blocked every other run on the machine for
// ever. The wait ends after maxWait with a transient error naming the holder.
func TestRecordLockWaitIsBounded(t *testing.T) {
	dir := t.TempDir()
	holder := &recordLocks{dir: dir}
	unlock, err := holder.lock(t.Context(), []string{"_acme-challenge.stuck.example."}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	waiter := &recordLocks{dir: dir, maxWait: 50 * time.Millisecond}
	_, err = waiter.lock(t.Context(), []string{"_acme-challenge.stuck.example."}, testLogger(t))
	if err == nil {
		t.Fatal("took a record lock another holder has")
	}
	if c := backoff.ClassOf(err); c != backoff.ClassTransient {
		t.Errorf("class %v, want transient: %v", c, err)
	}
	if !errors.Is(err, lockfile.ErrLocked) || !strings.Contains(err.Error(), "stuck.example") {
		t.Errorf("err = %v, want the record and the holder", err)
	}
}
