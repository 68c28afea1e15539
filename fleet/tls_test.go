package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/renewkit/renewkit/lockfile"
)

// testPKI writes a CA and certificates it signs into dir.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	CAFile string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.CAFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue returns the cert and key files of a certificate for cn, usable as a
// server certificate for 127.0.0.1 and as a client certificate.
func (p *testPKI) issue(t *testing.T, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, cn+".pem", "CERTIFICATE", der), p.write(t, cn+"-key.pem", "PRIVATE KEY", keyDER)
}

// A node with the documented RBAC role, authenticated by its client
// certificate over TLS, can do everything this package does under its
// prefix, and nothing under another.
func TestTLSClientCertAndRBAC(t *testing.T) {
	pki := newTestPKI(t)
	serverCert, serverKey := pki.issue(t, "etcd-server")
	cl := startClusterTLS(t, 1, &transport.TLSInfo{
		CertFile: serverCert, KeyFile: serverKey, TrustedCAFile: pki.CAFile, ClientCertAuth: true,
	})
	ctx := t.Context()

	// The operator's setup, as in the package doc.
	rootCert, rootKey := pki.issue(t, "root")
	rootTLS, err := clientTLS(Config{Endpoints: cl.endpoints(), CAFile: pki.CAFile, CertFile: rootCert, KeyFile: rootKey})
	if err != nil {
		t.Fatal(err)
	}
	root, err := clientv3.New(clientv3.Config{Endpoints: cl.endpoints(), TLS: rootTLS, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	noPassword := &clientv3.UserAddOptions{NoPassword: true}
	for _, step := range []func() error{
		func() error { _, err := root.UserAddWithOptions(ctx, "root", "", noPassword); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.RoleAdd(ctx, "renewkit-node"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "renewkit-node", "/renewkit/v1/",
				clientv3.GetPrefixRangeEnd("/renewkit/v1/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserAddWithOptions(ctx, "renewkit-node", "", noPassword); return err },
		func() error { _, err := root.UserGrantRole(ctx, "renewkit-node", "renewkit-node"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("RBAC setup: %v", err)
		}
	}

	nodeCert, nodeKey := pki.issue(t, "renewkit-node")
	cfg := Config{
		Endpoints: cl.endpoints(), CAFile: pki.CAFile, CertFile: nodeCert, KeyFile: nodeKey,
		Node: "node-a", LockTTL: 10 * time.Second, RequestTimeout: 5 * time.Second,
		SealKeyFile: writeSealKey(t, t.TempDir(), 1),
	}
	a := dial(t, cfg)
	l, err := a.TryLockFenced(ctx, www.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PutJournal(ctx, l, www, Journal{OrderURL: "u", Names: www.Domains, KeyPEM: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if err := a.PublishGeneration(ctx, l, www, testGeneration(1, "tls")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadGeneration(ctx, www); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ReadStates(ctx, www); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}

	// Outside its prefix the role gives nothing; that is not "unavailable".
	cfg.Prefix = "/other/"
	o := dial(t, cfg)
	_, err = tryLock(ctx, o, www.Name)
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, lockfile.ErrLocked) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("lock outside the granted prefix: %v, want permission denied", err)
	}
	// Without a client certificate, nothing. (The handshake failure shows
	// as ErrUnavailable: the etcd client waits for a connection that the
	// server refuses until the request timeout.)
	cfg.Prefix, cfg.CertFile, cfg.KeyFile = "", "", ""
	cfg.RequestTimeout = 300 * time.Millisecond
	anon := dial(t, cfg)
	if _, err := anon.ReadStates(ctx, www); err == nil {
		t.Error("read without a client certificate succeeded")
	}
}
