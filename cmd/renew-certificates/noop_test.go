package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNothingDueRunTouchesOnlyWhatItNeeds runs the timer's run with nothing
// due under strace: with ca_file set it must not load the system trust
// store (SSL_CERT_FILE and SSL_CERT_DIR point into the test's directory
// here, so that any read of them is seen), contact nobody, and write one
// Info record, the run's summary.
func TestNothingDueRunTouchesOnlyWhatItNeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	ca := startCA(t)
	env := newEnv(t, ca, "", "name = \"a\"\ndomains = [\"a.example.test\"]")
	env.mustRun(t, exitOK) // issues
	env.mustRun(t, exitOK) // fetches the ARI window: the next is the timer's usual run

	dir := t.TempDir()
	sysFile, sysDir := filepath.Join(dir, "system-roots.pem"), filepath.Join(dir, "system-roots.d")
	if err := os.WriteFile(sysFile, ca.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sysDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sysDir, "root.pem"), ca.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(dir, "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-e", "signal=none", "-e", "trace=openat,open,connect", "-o", trace,
		buildBinary(t), "-config", env.config, "-log-format", "json")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+sysFile, "SSL_CERT_DIR="+sysDir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "ptrace") {
			t.Skipf("strace not permitted here: %s", &stderr)
		}
		t.Fatalf("nothing-due run: %v\n%s", err, &stderr)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case strings.Contains(line, "system-roots"):
			t.Errorf("the system trust store was read: %s", line)
		case strings.Contains(line, "connect(") && (strings.Contains(line, "AF_INET") || strings.Contains(line, "AF_INET6")):
			t.Errorf("the run contacted the network: %s", line)
		}
	}
	// The log at Info: the run's summary, no record per certificate.
	var records []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		records = append(records, rec)
	}
	if len(records) != 1 || records[0]["msg"] != "run" || records[0]["not_due"] != 1.0 || records[0]["certificates"] != 1.0 {
		t.Errorf("log records %v, want one: msg=run certificates=1 not_due=1", records)
	}
}
