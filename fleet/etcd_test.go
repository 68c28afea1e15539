package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/etcdtest"
	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// testCluster is an embedded etcd cluster on loopback (internal/etcdtest)
// with this package's helpers.
type testCluster struct{ *etcdtest.Cluster }

// startCluster starts an n-member cluster and waits until it serves.
func startCluster(t testing.TB, n int) testCluster {
	t.Helper()
	return testCluster{etcdtest.Start(t, n)}
}

// startClusterTLS is startCluster with https client endpoints, if tlsInfo is
// not nil.
func startClusterTLS(t testing.TB, n int, tlsInfo *transport.TLSInfo) testCluster {
	t.Helper()
	return testCluster{etcdtest.StartTLS(t, n, tlsInfo)}
}

func (c testCluster) endpoints() []string { return c.Endpoints() }

// writeSealKey writes a random seal key file (hex form) and returns its path.
func writeSealKey(t testing.TB, dir string, seed byte) string {
	t.Helper()
	key := make([]byte, SealKeySize)
	for i := range key {
		key[i] = seed + byte(i)*7
	}
	path := filepath.Join(dir, fmt.Sprintf("seal-%d.key", seed))
	if err := os.WriteFile(path, fmt.Appendf(nil, "%x\n", key), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testConfig is a Config for the cluster with short timeouts.
func (c testCluster) config(t testing.TB, node string) Config {
	return Config{
		Endpoints:      c.endpoints(),
		Prefix:         "/test/" + strings.ReplaceAll(t.Name(), "/", "_") + "/",
		Node:           node,
		LockTTL:        10 * time.Second, // only the children, whose leases must expire, use 1s
		DialTimeout:    2 * time.Second,
		RequestTimeout: 2 * time.Second,
		SealKeyFile:    writeSealKey(t, t.TempDir(), 1),
	}
}

// dial returns a Client closed at the end of the test.
func dial(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
