package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/renewkit/renewkit/renew/acmeissuer"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// TestRotatesWithoutRestart runs the server against the test CA with
// 6-second certificates and a client that handshakes continuously: it must
// see the serial change (the Renewer renewed in-process and the
// CertSource picked the new generation up) and never a failed handshake.
func TestRotatesWithoutRestart(t *testing.T) {
	ca := acmetest.New(t, acmetest.Options{Profiles: map[string]time.Duration{"tiny": 6 * time.Second}})
	ready := make(chan string, 1)
	cfg := config{
		Server: ca.DirectoryURL(), CARoots: ca.TLSRootsPEM(), AgreeTOS: true,
		Domains: []string{"rotate.example.test"}, Profile: "tiny",
		Root: filepath.Join(t.TempDir(), "root"), Listen: "127.0.0.1:0", HTTP01: ca.HTTP01Addr(),
		Logger: slog.New(slog.DiscardHandler), roots: ca.ChainRoots(),
		ready: func(addr string) { ready <- addr },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("server ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server not ready")
	}
	clientCfg := &tls.Config{RootCAs: ca.ChainRoots(), ServerName: "rotate.example.test"}
	var serials []*big.Int
	handshakes := 0
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(serials) < 2 && time.Now().Before(deadline) {
		<-tick.C
		conn, err := tls.Dial("tcp", addr, clientCfg)
		if err != nil {
			t.Fatalf("handshake %d failed: %v", handshakes, err)
		}
		handshakes++
		s := conn.ConnectionState().PeerCertificates[0].SerialNumber
		conn.Close()
		if len(serials) == 0 || serials[len(serials)-1].Cmp(s) != 0 {
			serials = append(serials, s)
		}
	}
	if len(serials) < 2 {
		t.Fatalf("no rotation seen in %d handshakes", handshakes)
	}
	t.Logf("rotation seen after %d handshakes, none failed", handshakes)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
}

// TestAccountDirKeepsAnEarlierAccount: this example used to keep its account
// in ROOT/.account; moving to the CLI's default silently registered a second
// account and orphaned orders journaled under the first.
func TestAccountDirKeepsAnEarlierAccount(t *testing.T) {
	root := t.TempDir()
	const server = "https://ca.example/directory"
	if got, want := accountDir(root, server), acmeissuer.DefaultAccountDir(root, server); got != want {
		t.Fatalf("fresh root: %s, want the default %s", got, want)
	}
	old := filepath.Join(root, ".account")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "account.key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := accountDir(root, server); got != old {
		t.Fatalf("root with an earlier account: %s, want %s", got, old)
	}
}
