package renew_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"

	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/internal/testchild"
)

// newIssuer returns an acmeissuer for the CA at dirURL, with its HTTP-01
// listener on http01Addr (empty: none, for an always-valid CA).
func newIssuer(t testing.TB, dirURL, caFile, http01Addr, accountDir string) *acmeissuer.Issuer {
	t.Helper()
	caPEM, err := os.ReadFile(caFile) // as a child process would
	if err != nil {
		t.Fatal(err)
	}
	cfg := acmeissuer.Config{
		DirectoryURL: dirURL,
		AgreeTOS:     true,
		AccountDir:   accountDir,
		CARootsPEM:   caPEM,
		HTTP01:       &acmeissuer.HTTP01{Addr: http01Addr},
	}
	iss, err := acmeissuer.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iss.Close() })
	return iss
}

// servedLeaf reads the stable links and checks they are one whole
// generation (internal/served's Check) whose chain verifies to the CA's
// roots.
func servedLeaf(t testing.TB, dir string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	snap, err := served.Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Verify(roots); err != nil {
		t.Fatalf("served chain does not verify: %v", err)
	}
	return snap.Leaf
}

func TestE2EFirstIssuanceThenNoOp(t *testing.T) {
	ca := testacme.New(t, testacme.Options{})
	base := t.TempDir()
	iss := newIssuer(t, ca.DirectoryURL(), ca.CAFile(), ca.HTTP01Addr(), filepath.Join(base, "account"))
	r := &renew.Renewer{Root: filepath.Join(base, "certs"), Issuer: iss, Roots: ca.RootPool()}
	var ran []hooks.Event
	h := hooks.Func("record", func(_ context.Context, ev hooks.Event) error { ran = append(ran, ev); return nil })
	c := renew.Certificate{Name: "www", Domains: []string{"www.example.test", "example.test"}, Profile: "default", Hooks: []hooks.Hook{h}}

	res := r.Run(context.Background(), c)[0]
	if res.Outcome != renew.Renewed || res.Err != nil {
		t.Fatalf("first run: %v", res)
	}
	leaf := servedLeaf(t, filepath.Join(r.Root, "www"), ca.RootPool())
	if got := ca.Stats("www.example.test", "example.test"); got.Issued != 1 || got.Orders != 1 {
		t.Fatalf("CA stats %+v", got)
	}
	if len(ran) != 1 || ran[0].Serial != fmt.Sprintf("%x", leaf.SerialNumber) {
		t.Fatalf("hook events %+v", ran)
	}
	res = r.Run(context.Background(), c)[0]
	if res.Outcome != renew.NotDue {
		t.Fatalf("second run: %v", res)
	}
	if got := ca.Stats(); got.Orders != 1 {
		t.Fatalf("second run contacted the CA: %+v", got)
	}
}

func TestE2EARIWindowMovedRenewsEarly(t *testing.T) {
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	base := t.TempDir()
	iss := newIssuer(t, ca.DirectoryURL(), ca.CAFile(), "", filepath.Join(base, "account"))
	now := time.Now()
	clock := now
	r := &renew.Renewer{Root: filepath.Join(base, "certs"), Issuer: iss, Roots: ca.RootPool(), Now: func() time.Time { return clock }}
	c := renew.Certificate{Name: "ari", Domains: []string{"ari.example.test"}, Profile: "default"}
	if res := r.Run(context.Background(), c)[0]; res.Outcome != renew.Renewed {
		t.Fatalf("first: %v", res)
	}
	clock = clock.Add(7 * time.Hour) // past the ARI refetch interval
	if res := r.Run(context.Background(), c)[0]; res.Outcome != renew.NotDue {
		t.Fatalf("with the CA's normal window: %v", res)
	}
	leaf := servedLeaf(t, filepath.Join(r.Root, "ari"), ca.RootPool())
	if err := ca.SetRenewalWindow(leaf, now.Add(-2*time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(7 * time.Hour)
	res := r.Run(context.Background(), c)[0]
	if res.Outcome != renew.Renewed {
		t.Fatalf("after the CA moved the window: %v", res)
	}
	if st := ca.Stats("ari.example.test"); st.Issued != 2 || st.Replacing != 1 {
		t.Fatalf("CA stats %+v: want a second issuance that names the one it replaces", st)
	}
}

func TestE2EShortLivedProfileRenewsByFraction(t *testing.T) {
	ca := testacme.New(t, testacme.Options{AlwaysValid: true, Profiles: map[string]time.Duration{"tiny": time.Hour}})
	base := t.TempDir()
	iss := newIssuer(t, ca.DirectoryURL(), ca.CAFile(), "", filepath.Join(base, "account"))
	offset := time.Duration(0)
	// Pebble offers ARI, whose window would override the policy: hide it to
	// see the policy at work.
	r := &renew.Renewer{Root: filepath.Join(base, "certs"), Issuer: issueOnly{iss}, Roots: ca.RootPool(), Now: func() time.Time { return time.Now().Add(offset) }}
	c := renew.Certificate{Name: "tiny", Domains: []string{"tiny.example.test"}, Profile: "tiny"}
	res := r.Run(context.Background(), c)[0]
	if res.Outcome != renew.Renewed || time.Until(res.NotAfter) > time.Hour+time.Minute {
		t.Fatalf("first: %v", res)
	}
	offset = 35 * time.Minute // 25 of 60 minutes left: more than a third
	if res := r.Run(context.Background(), c)[0]; res.Outcome != renew.NotDue {
		t.Fatalf("at 35 min: %v", res)
	}
	offset = 45 * time.Minute // 15 minutes left: less than a third
	if res := r.Run(context.Background(), c)[0]; res.Outcome != renew.Renewed {
		t.Fatalf("at 45 min: %v", res)
	}
}

func TestE2ETransientFaultsRecoveredWithinRun(t *testing.T) {
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	base := t.TempDir()
	iss := newIssuer(t, ca.DirectoryURL(), ca.CAFile(), "", filepath.Join(base, "account"))
	ca.Inject(testacme.Fault{Endpoint: testacme.EndpointNewOrder, Count: 2, Kind: testacme.FaultProblem, Status: 500, Problem: "serverInternal"})
	r := &renew.Renewer{Root: filepath.Join(base, "certs"), Issuer: iss, Roots: ca.RootPool(),
		Retry: shortRetry()}
	res := r.Run(context.Background(), renew.Certificate{Name: "flaky", Domains: []string{"flaky.example.test"}, Profile: "default"})[0]
	if res.Outcome != renew.Renewed || res.Attempts != 3 {
		t.Fatalf("%v (attempts %d)", res, res.Attempts)
	}
}

func TestE2EPermanentErrorBacksOff(t *testing.T) {
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	base := t.TempDir()
	iss := newIssuer(t, ca.DirectoryURL(), ca.CAFile(), "", filepath.Join(base, "account"))
	remove := ca.Inject(testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Status: 400, Problem: "rejectedIdentifier"})
	r := &renew.Renewer{Root: filepath.Join(base, "certs"), Issuer: iss, Roots: ca.RootPool(), Retry: shortRetry()}
	c := renew.Certificate{Name: "bad", Domains: []string{"bad.example.test"}, Profile: "default"}
	res := r.Run(context.Background(), c)[0]
	if res.Outcome != renew.Failed || res.Attempts != 1 || !strings.Contains(res.Err.Error(), "rejectedIdentifier") {
		t.Fatalf("%v (attempts %d)", res, res.Attempts)
	}
	remove()
	orders := ca.Stats().Orders
	if res := r.Run(context.Background(), c)[0]; res.Outcome != renew.BackingOff || ca.Stats().Orders != orders {
		t.Fatalf("second run: %v", res)
	}
}

func TestE2ERetryAfterHonoured(t *testing.T) {
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	base := t.TempDir()
	iss := newIssuer(t, ca.DirectoryURL(), ca.CAFile(), "", filepath.Join(base, "account"))
	ca.Inject(testacme.Fault{Endpoint: testacme.EndpointNewOrder, Kind: testacme.FaultProblem, Problem: "rateLimited", RetryAfter: time.Hour})
	r := &renew.Renewer{Root: filepath.Join(base, "certs"), Issuer: iss, Roots: ca.RootPool(), Retry: shortRetry()}
	start := time.Now()
	res := r.Run(context.Background(), renew.Certificate{Name: "rl", Domains: []string{"rl.example.test"}, Profile: "default"})[0]
	if res.Outcome != renew.Failed || res.RetryNotBefore.Before(start.Add(time.Hour)) {
		t.Fatalf("%v: retry not before %v", res, res.RetryNotBefore)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("the run waited out the Retry-After")
	}
}

func TestE2ETenGoroutinesOneIssuance(t *testing.T) {
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	base := t.TempDir()
	iss := newIssuer(t, ca.DirectoryURL(), ca.CAFile(), "", filepath.Join(base, "account"))
	r := &renew.Renewer{Root: filepath.Join(base, "certs"), Issuer: iss, Roots: ca.RootPool()}
	c := renew.Certificate{Name: "busy", Domains: []string{"busy.example.test"}, Profile: "default"}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			res := r.Run(context.Background(), c)[0]
			if !res.Outcome.OK() {
				t.Errorf("%v", res)
			}
		})
	}
	wg.Wait()
	if st := ca.Stats("busy.example.test"); st.Issued != 1 || st.MaxConcurrentOrders != 1 {
		t.Fatalf("CA stats %+v", st)
	}
}

// issueOnly hides an Issuer's optional interfaces (ARI, Resume).
type issueOnly struct{ renew.Issuer }

// Child processes run a Renewer against the CA living in the parent.

const e2eChild = "RENEW_E2E_CHILD"

func TestE2EHelperProcess(t *testing.T) {
	mode := os.Getenv(e2eChild)
	if mode == "" {
		t.Skip("helper process")
	}
	var issuer renew.Issuer = newIssuer(t, os.Getenv("DIR_URL"), os.Getenv("CA_FILE"), os.Getenv("HTTP01"), os.Getenv("ACCOUNT"))
	if mode == "kill-after-issue" {
		issuer = killAfterIssue{issuer.(*acmeissuer.Issuer)}
	}
	r := &renew.Renewer{Root: os.Getenv("ROOT"), Issuer: issuer}
	c := renew.Certificate{Name: "proc", Domains: []string{"proc.example.test"}, Profile: "default", Force: os.Getenv("FORCE") != ""}
	res := r.Run(context.Background(), c)[0]
	fmt.Println(res.Outcome)
	if !res.Outcome.OK() {
		fmt.Fprintln(os.Stderr, res.Err)
		os.Exit(1)
	}
	os.Exit(0)
}

// killAfterIssue SIGKILLs the process as soon as the CA has issued: after
// finalize and download, before anything is installed.
type killAfterIssue struct{ *acmeissuer.Issuer }

func (k killAfterIssue) Issue(ctx context.Context, req renew.IssueRequest, j func(ctx context.Context, rec renew.InFlight) error) (*renew.Issued, error) {
	iss, err := k.Issuer.Issue(ctx, req, j)
	if err == nil {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	return iss, err
}

func e2eChildCmd(ca *testacme.Server, base, mode string, force bool, http01 string) *exec.Cmd {
	cmd := testchild.Command("TestE2EHelperProcess", e2eChild+"="+mode, "DIR_URL="+ca.DirectoryURL(), "CA_FILE="+ca.CAFile(),
		"HTTP01="+http01, "ACCOUNT="+filepath.Join(base, "account"), "ROOT="+filepath.Join(base, "certs"))
	if force {
		cmd.Env = append(cmd.Env, "FORCE=1")
	}
	return cmd
}

func TestE2EKilledAfterFinalizeNoSecondIssuance(t *testing.T) {
	ca := testacme.New(t, testacme.Options{})
	base := t.TempDir()
	if out, err := e2eChildCmd(ca, base, "normal", false, ca.HTTP01Addr()).CombinedOutput(); err != nil {
		t.Fatalf("first issuance: %v\n%s", err, out)
	}
	dir := filepath.Join(base, "certs", "proc")
	before := servedLeaf(t, dir, ca.RootPool())
	err := e2eChildCmd(ca, base, "kill-after-issue", true, ca.HTTP01Addr()).Run()
	if !testchild.Killed(err) {
		t.Fatalf("child not killed: %v", err)
	}
	if st := ca.Stats("proc.example.test"); st.Issued != 2 {
		t.Fatalf("CA stats after the kill %+v", st)
	}
	if s := servedLeaf(t, dir, ca.RootPool()); s.SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Fatal("served certificate changed before install")
	}
	out, err := e2eChildCmd(ca, base, "normal", false, ca.HTTP01Addr()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), string(renew.Recovered)) {
		t.Fatalf("recovery run: %v\n%s", err, out)
	}
	st := ca.Stats("proc.example.test")
	if st.Issued != 2 || st.Orders != 2 {
		t.Fatalf("CA stats after recovery %+v: the issued certificate was ordered again", st)
	}
	if after := servedLeaf(t, dir, ca.RootPool()); after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("recovered certificate not installed")
	}
}

func TestE2EFiveProcessesOneIssuance(t *testing.T) {
	ca := testacme.New(t, testacme.Options{AlwaysValid: true})
	base := t.TempDir()
	// Create the account first so the race is about the lineage.
	newIssuer(t, ca.DirectoryURL(), ca.CAFile(), "", filepath.Join(base, "account")).Connect(context.Background())
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for range 5 {
		c := e2eChildCmd(ca, base, "normal", false, "")
		var b strings.Builder
		c.Stdout, c.Stderr = &b, &b
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, c), append(outs, &b)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	if st := ca.Stats("proc.example.test"); st.Issued != 1 || st.MaxConcurrentOrders != 1 {
		t.Fatalf("CA stats %+v", st)
	}
	servedLeaf(t, filepath.Join(base, "certs", "proc"), ca.RootPool())
}

// shortRetry is the default policy's shape with millisecond waits.
func shortRetry() backoff.Policy {
	return backoff.Policy{Retries: 3, Initial: 10 * time.Millisecond, Multiplier: 3, Max: 100 * time.Millisecond, Jitter: -1}
}
