package acmeissuer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/testacme"
	"github.com/renewkit/renewkit/renew"

	"github.com/renewkit/renewkit/internal/testchild"
)

// Environment of the helper process (a re-exec of this test binary). The
// CA lives in the parent test process; the child reaches it over loopback.
const (
	helperRoleEnv    = "RENEWKIT_ACMEISSUER_HELPER"
	helperDirEnv     = "RENEWKIT_ACMEISSUER_DIRECTORY"
	helperCAFileEnv  = "RENEWKIT_ACMEISSUER_CAFILE"
	helperHTTP01Env  = "RENEWKIT_ACMEISSUER_HTTP01"
	helperAccountEnv = "RENEWKIT_ACMEISSUER_ACCOUNT"
	helperDomainEnv  = "RENEWKIT_ACMEISSUER_DOMAIN"
	helperOutEnv     = "RENEWKIT_ACMEISSUER_OUT"
)

// runHelper runs TestHelperProcess in a child with role and returns its
// wait error.
func runHelper(t *testing.T, role string, ca *testacme.Server, accountDir, domain, out string) error {
	t.Helper()
	cmd := testchild.Command("TestHelperProcess",
		helperRoleEnv+"="+role,
		helperDirEnv+"="+ca.DirectoryURL(),
		helperCAFileEnv+"="+ca.CAFile(),
		helperHTTP01Env+"="+ca.HTTP01Addr(),
		helperAccountEnv+"="+accountDir,
		helperDomainEnv+"="+domain,
		helperOutEnv+"="+out,
	)
	output, err := cmd.CombinedOutput()
	if len(output) > 0 {
		t.Logf("helper %s output:\n%s", role, output)
	}
	if role != "issue-then-sigkill" && err != nil {
		t.Fatalf("helper %s: %v", role, err)
	}
	return err
}

// TestHelperProcess is the child side of the subprocess tests; it does
// nothing unless started by runHelper.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperRoleEnv)
	if role == "" {
		t.Skip("helper process for the subprocess tests")
	}
	if err := helperMain(role); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func helperMain(role string) error {
	caPEM, err := os.ReadFile(os.Getenv(helperCAFileEnv))
	if err != nil {
		return err
	}
	cfg := Config{
		DirectoryURL: os.Getenv(helperDirEnv),
		AgreeTOS:     true,
		AccountDir:   os.Getenv(helperAccountEnv),
		CARootsPEM:   caPEM,
		HTTP01:       &HTTP01{Addr: os.Getenv(helperHTTP01Env)},
	}
	ctx := context.Background()
	iss, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	defer iss.Close()
	out := os.Getenv(helperOutEnv)
	switch role {
	case "connect":
		if err := iss.Connect(ctx); err != nil {
			return err
		}
		rec, err := readAccountRecord(filepath.Join(cfg.AccountDir, accountRecordFile))
		if err != nil {
			return err
		}
		return os.WriteFile(out, []byte(rec.URL), 0o600)
	case "issue-then-sigkill":
		// The crash point: SIGKILL right after finalize returned, as
		// systemd-oomd would.
		iss.afterFinalize = func() {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		key, err := renew.EC256.Generate()
		if err != nil {
			return err
		}
		journal := func(_ context.Context, rec renew.InFlight) error {
			data, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			return durable.WriteFile(out, data, 0o600)
		}
		d := os.Getenv(helperDomainEnv)
		_, err = iss.Issue(ctx, renew.IssueRequest{Name: "crash", Domains: []string{d}, Key: key, Profile: "default"}, journal)
		return fmt.Errorf("Issue returned instead of being killed: %v", err)
	}
	return fmt.Errorf("unknown role %q", role)
}

// TestResumeAfterSIGKILL kills a child process right after it finalized an
// order, then resumes the journaled order in this process: the CA issued
// exactly one certificate, and the resumed one is it.
func TestResumeAfterSIGKILL(t *testing.T) {
	ca := startCA(t, testacme.Options{})
	accountDir := t.TempDir()
	journalFile := filepath.Join(t.TempDir(), "inflight.json")
	name := domain("crash")

	err := runHelper(t, "issue-then-sigkill", ca, accountDir, name, journalFile)
	if !testchild.Killed(err) {
		t.Fatalf("child exited with %v, want killed by SIGKILL", err)
	}
	data, err := os.ReadFile(journalFile)
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	var rec renew.InFlight
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if st := ca.Stats(name); st.Orders != 1 {
		t.Fatalf("CA stats before resume %+v, want one order", st)
	}

	cfg := testConfig(t, ca)
	cfg.AccountDir = accountDir // the child's account: the order is its
	iss := newTestIssuer(t, cfg)
	got, err := iss.Resume(t.Context(), rec)
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	checkIssued(t, got, renew.IssueRequest{Domains: []string{name}})
	verifyChain(t, ca, got)
	if got.OrderURL != rec.OrderURL {
		t.Errorf("resumed order %s, want %s", got.OrderURL, rec.OrderURL)
	}
	if st := ca.Stats(name); st.Orders != 1 || st.Issued != 1 {
		t.Errorf("CA stats %+v, want exactly one order and one issued certificate", st)
	}
}
