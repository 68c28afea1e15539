package fleet

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// testCluster is an embedded etcd cluster on loopback: members run in this
// test process, with short ticks so that leases and elections take about a
// second, not the production defaults.
type testCluster struct {
	t       testing.TB
	members []*testMember
	tls     *transport.TLSInfo // client TLS of the members, nil for plain http
}

type testMember struct {
	name            string
	dir             string
	peerURL, client url.URL
	etcd            *embed.Etcd // nil while stopped
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts an n-member cluster and waits until it serves.
func startCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	return startClusterTLS(t, n, nil)
}

// startClusterTLS is startCluster with https client endpoints, if tlsInfo is
// not nil.
func startClusterTLS(t testing.TB, n int, tlsInfo *transport.TLSInfo) *testCluster {
	t.Helper()
	c := &testCluster{t: t, tls: tlsInfo}
	scheme := "http"
	if tlsInfo != nil {
		scheme = "https"
	}
	var initial []string
	for i := range n {
		m := &testMember{
			name:    fmt.Sprintf("m%d", i),
			dir:     filepath.Join(t.TempDir(), "etcd"),
			peerURL: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", freePort(t))},
			client:  url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", freePort(t))},
		}
		initial = append(initial, m.name+"="+m.peerURL.String())
		c.members = append(c.members, m)
	}
	for _, m := range c.members {
		c.start(m, strings.Join(initial, ","))
	}
	for _, m := range c.members {
		c.waitReady(m)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			c.stop(m)
		}
	})
	return c
}

func (c *testCluster) start(m *testMember, initial string) {
	c.t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.TickMs = 25
	cfg.ElectionMs = 250
	cfg.ListenPeerUrls = []url.URL{m.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.peerURL}
	cfg.ListenClientUrls = []url.URL{m.client}
	cfg.AdvertiseClientUrls = []url.URL{m.client}
	cfg.InitialCluster = initial
	cfg.InitialClusterToken = "renewkit-fleet-test"
	cfg.ClusterState = embed.ClusterStateFlagNew
	if c.tls != nil {
		cfg.ClientTLSInfo = *c.tls
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		c.t.Fatalf("start etcd member %s: %v", m.name, err)
	}
	m.etcd = e
}

func (c *testCluster) waitReady(m *testMember) {
	c.t.Helper()
	select {
	case <-m.etcd.Server.ReadyNotify():
	case err := <-m.etcd.Err():
		c.t.Fatalf("etcd member %s: %v", m.name, err)
	case <-time.After(60 * time.Second):
		c.t.Fatalf("etcd member %s not ready after 60s", m.name)
	}
}

// stop stops m (like a crashed or shut down machine); restart brings it back
// with its data and waits until it has rejoined (which needs a quorum).
func (c *testCluster) stop(m *testMember) {
	if m.etcd == nil {
		return
	}
	start := time.Now()
	done := make(chan struct{})
	go func(e *embed.Etcd) {
		defer close(done)
		e.Close()
	}(m.etcd)
	m.etcd = nil
	select {
	case <-done:
		c.t.Logf("stopped etcd member %s in %v", m.name, time.Since(start).Round(time.Millisecond))
	case <-time.After(60 * time.Second):
		// embed's Close waits forever for a member that never got ready.
		c.t.Errorf("etcd member %s did not stop within 60s", m.name)
	}
}

func (c *testCluster) restart(m *testMember) {
	c.t.Helper()
	var initial []string
	for _, o := range c.members {
		initial = append(initial, o.name+"="+o.peerURL.String())
	}
	c.start(m, strings.Join(initial, ","))
	c.waitReady(m)
}

// waitLeader returns the leader once the running members have one.
func (c *testCluster) waitLeader() *testMember {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := c.leader(); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			c.t.Fatal("no etcd leader after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leader returns the member the running members agree leads, or nil.
func (c *testCluster) leader() *testMember {
	for _, m := range c.members {
		if m.etcd == nil {
			continue
		}
		lead := m.etcd.Server.Leader()
		for _, o := range c.members {
			if o.etcd != nil && o.etcd.Server.MemberID() == lead {
				return o
			}
		}
	}
	return nil
}

func (c *testCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.client.String())
	}
	return eps
}

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
func (c *testCluster) config(t testing.TB, node string) Config {
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
