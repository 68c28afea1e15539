package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCAFileWithoutCertificate: a ca_file that holds no certificate (here a
// key, pasted by mistake) is a configuration error naming ca_file and the
// file, before any certificate is ordered; the key is never echoed.
func TestCAFileWithoutCertificate(t *testing.T) {
	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "www"`+"\n"+`domains = ["cafile.example.test"]`)
	const keyBody = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\n"+keyBody+"\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env.config, []byte(strings.Replace(string(cfg), ca.CAFile(), bad, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := env.run(t, context.Background())
	if code != exitUsage {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, exitUsage, stderr)
	}
	if !strings.Contains(stderr, "ca_file "+bad) || !strings.Contains(stderr, `"PRIVATE KEY"`) {
		t.Errorf("stderr does not name ca_file %s and what is wrong:\n%s", bad, stderr)
	}
	if strings.Contains(stderr, keyBody) {
		t.Errorf("stderr echoes the file's contents:\n%s", stderr)
	}
	if st := ca.Stats(); st.Orders != 0 {
		t.Errorf("%d orders at the CA, want none", st.Orders)
	}
}
