//go:build unix

package main

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/renewkit/renewkit/internal/etcdtest"
	"github.com/renewkit/renewkit/internal/testpki"
)

// writePair writes a leaf for cn, signed by ca, usable by a server on
// 127.0.0.1 and as a client certificate, into dir (the key mode 0600).
func writePair(t *testing.T, ca *testpki.CA, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	leaf, err := ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+"-key.pem")
	if err := os.WriteFile(certFile, leaf.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, leaf.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// [fleet] over TLS with a client certificate (etcd's --client-cert-auth):
// a run publishes through it and -status reads it; a TLS file that cannot
// be used stops the run before anything, naming its key and line.
func TestFleetOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	etcdCA, err := testpki.NewCA(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "etcd-ca.pem")
	if err := os.WriteFile(caFile, etcdCA.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	serverCert, serverKey := writePair(t, etcdCA, dir, "etcd-server")
	cluster := etcdtest.StartTLS(t, 1, &transport.TLSInfo{CertFile: serverCert, KeyFile: serverKey, TrustedCAFile: caFile, ClientCertAuth: true})
	nodeCert, nodeKey := writePair(t, etcdCA, dir, "renewkit-node")

	ca := startCA(t)
	env := newEnv(t, ca, "", `name = "a"`+"\n"+`domains = ["a.example.test"]`)
	seal := writeSealKey(t, filepath.Dir(env.config))
	section := fmt.Sprintf("\n[fleet]\nendpoints = [%s]\nca_file = %q\ncert_file = %q\nkey_file = %q\nseal_key_file = %q\nnode = \"web-1\"\n",
		strconv.Quote(cluster.Endpoints()[0]), caFile, nodeCert, nodeKey, seal)
	appendConfig(t, env, section)
	if !strings.HasPrefix(cluster.Endpoints()[0], "https://") {
		t.Fatalf("endpoint %s is not https", cluster.Endpoints()[0])
	}

	_, log := env.mustRun(t, exitOK)
	if got := summaries(log); got["a"] != "renewed" {
		t.Errorf("summaries = %v\n%s", got, log)
	}
	out, _ := env.mustRun(t, exitOK, "-status")
	if !strings.Contains(out, "this node: web-1)") || !regexp.MustCompile(`\na +1 +\S+ +1 +\S+ +yes `).MatchString(out) {
		t.Errorf("-status over TLS:\n%s", out)
	}

	// The client key readable by others: refused, naming fleet.key_file.
	if err := os.Chmod(nodeKey, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := env.run(t, t.Context())
	if code != exitUsage || !strings.Contains(errOut, fmt.Sprintf("%s:%d: fleet: key_file: ", env.config, lineOf(t, env.config, "key_file"))) || !strings.Contains(errOut, "chmod 0600") {
		t.Errorf("client key mode 0644: exit %d, want %d naming key_file's line:\n%s", code, exitUsage, errOut)
	}
	if err := os.Chmod(nodeKey, 0o600); err != nil {
		t.Fatal(err)
	}
	// The CA file gone: refused, naming fleet.ca_file.
	if err := os.Remove(caFile); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = env.run(t, t.Context())
	if code != exitUsage || !strings.Contains(errOut, fmt.Sprintf("%s:%d: fleet: ca_file: ", env.config, lineOf(t, env.config, "ca_file"))) || !strings.Contains(errOut, "no such file") {
		t.Errorf("CA file missing: exit %d, want %d naming ca_file's line:\n%s", code, exitUsage, errOut)
	}
}

// lineOf is the line of the last key named key in the file at path.
func lineOf(t *testing.T, path, key string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, key+" = ") {
			n = i + 1
		}
	}
	return n
}
