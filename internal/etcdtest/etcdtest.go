// Package etcdtest runs etcd clusters inside a test process, on loopback,
// for the tests of fleet mode: a single member or several, each member
// stoppable and restartable with its data (a crashed or rebooted machine),
// and the leader found for the tests that stop it.
//
// Members are go.etcd.io/etcd/server/v3/embed servers with short ticks (50
// ms heartbeat, 500 ms election timeout), so that an election or a lease
// expiry takes a second or two rather than the production defaults, yet a
// loaded 2-core CI machine running the race detector does not miss enough
// heartbeats to lose its leader (250 ms did, once). Each
// listens on 127.0.0.1 ports free when the cluster starts and keeps its data
// in the test's temporary directory. Everything a cluster starts is stopped
// in the test's cleanup.
//
// The package is for tests only.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/renewkit/renewkit/internal/loopport"
)

// TB is the part of testing.TB this package uses; *testing.T and
// *testing.B satisfy it.
type TB interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// readyTimeout bounds the wait for a member to serve, a member to stop and
// a leader to be elected.
const readyTimeout = 60 * time.Second

// Cluster is an etcd cluster whose members run in the test process. Its
// methods are for the test's goroutine (they call Fatalf).
type Cluster struct {
	// Members are the cluster's members, in the order they were created.
	Members []*Member

	t   TB
	tls *transport.TLSInfo // client TLS of the members, nil for plain http
}

// Member is one member of a Cluster.
type Member struct {
	// Name is the member's name: "m0", "m1", …
	Name string
	// Dir is its data directory, kept across Stop and Restart.
	Dir string
	// PeerURL and ClientURL are its loopback URLs, kept across Stop and
	// Restart.
	PeerURL, ClientURL url.URL

	etcd *embed.Etcd // nil while stopped
}

// Running reports whether m was started and not stopped since.
func (m *Member) Running() bool { return m.etcd != nil }

// Server returns the running member's embedded server (nil while it is
// stopped), for what this package does not wrap.
func (m *Member) Server() *embed.Etcd { return m.etcd }

// Start starts an n-member cluster with plain http client URLs, waits until
// every member serves and stops them all in t's cleanup.
func Start(t TB, n int) *Cluster {
	t.Helper()
	return StartTLS(t, n, nil)
}

// StartTLS is Start with https client URLs served with tlsInfo (its
// ClientCertAuth asks clients for certificates), or plain http if tlsInfo
// is nil. Peers talk plain http.
func StartTLS(t TB, n int, tlsInfo *transport.TLSInfo) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: a cluster of %d members", n)
	}
	c := &Cluster{t: t, tls: tlsInfo}
	scheme := "http"
	if tlsInfo != nil {
		scheme = "https"
	}
	// The members' ports stay reserved while the cluster lives: a member
	// stopped and restarted binds its port again, and no other test (the
	// test CA reserving a challenge port for a CLI child) may take it
	// meanwhile.
	ports := make([]int, 2*n)
	for i := range ports {
		p, release, err := loopport.Reserve()
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
		t.Cleanup(func() { _ = release() })
		ports[i] = p
	}
	for i := range n {
		c.Members = append(c.Members, &Member{
			Name:      fmt.Sprintf("m%d", i),
			Dir:       filepath.Join(t.TempDir(), "etcd"),
			PeerURL:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])},
			ClientURL: url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])},
		})
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			c.Stop(m)
		}
	})
	c.Restart(c.Members...)
	return c
}

// FreePort returns a loopback TCP port nothing listens on right now.
func FreePort(t TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n distinct loopback TCP ports nothing listens on right
// now. Their listeners are all open at once before any is closed: ports
// taken one after the other can repeat (the kernel may hand a port just
// closed out again), and a cluster whose members share a URL does not
// start.
func FreePorts(t TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("etcdtest: free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Endpoints returns the client URLs of every member, running or not (a
// client fails over between them).
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL.String())
	}
	return eps
}

// Stop stops m, like a crashed or shut down machine; its data stays. It is a
// no-op for a stopped member.
func (c *Cluster) Stop(m *Member) {
	c.t.Helper()
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
		c.t.Logf("etcdtest: stopped member %s in %v", m.Name, time.Since(start).Round(time.Millisecond))
	case <-time.After(readyTimeout):
		// embed's Close waits forever for a member that never got ready.
		c.t.Errorf("etcdtest: member %s did not stop within %v", m.Name, readyTimeout)
	}
}

// Restart starts the given stopped members with their data (Start uses it
// for the first start) and waits until each serves, which needs a quorum of
// the cluster running: restart the members of a lost majority together.
func (c *Cluster) Restart(ms ...*Member) {
	c.t.Helper()
	var initial []string
	for _, o := range c.Members {
		initial = append(initial, o.Name+"="+o.PeerURL.String())
	}
	for _, m := range ms {
		if m.etcd != nil {
			c.t.Fatalf("etcdtest: restart member %s: it is running", m.Name)
		}
		c.start(m, strings.Join(initial, ","))
	}
	for _, m := range ms {
		c.waitReady(m)
	}
}

func (c *Cluster) start(m *Member, initial string) {
	c.t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.Dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	cfg.ListenPeerUrls = []url.URL{m.PeerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.PeerURL}
	cfg.ListenClientUrls = []url.URL{m.ClientURL}
	cfg.AdvertiseClientUrls = []url.URL{m.ClientURL}
	cfg.InitialCluster = initial
	cfg.InitialClusterToken = "renewkit-etcdtest"
	cfg.ClusterState = embed.ClusterStateFlagNew
	if c.tls != nil {
		cfg.ClientTLSInfo = *c.tls
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		c.t.Fatalf("etcdtest: start member %s: %v", m.Name, err)
	}
	m.etcd = e
}

func (c *Cluster) waitReady(m *Member) {
	c.t.Helper()
	select {
	case <-m.etcd.Server.ReadyNotify():
	case err := <-m.etcd.Err():
		c.t.Fatalf("etcdtest: member %s: %v", m.Name, err)
	case <-time.After(readyTimeout):
		c.t.Fatalf("etcdtest: member %s not ready after %v", m.Name, readyTimeout)
	}
}

// WaitLeader returns the leader once the running members have one, failing
// the test after a minute without.
func (c *Cluster) WaitLeader() *Member {
	c.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		if m := c.Leader(); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("etcdtest: no leader after %v", readyTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polling the members' view; there is no notification of a leader across members
	}
}

// Leader returns the running member that a running member knows as its
// leader, or nil if none does.
func (c *Cluster) Leader() *Member {
	for _, m := range c.Members {
		if m.etcd == nil {
			continue
		}
		lead := m.etcd.Server.Leader()
		for _, o := range c.Members {
			if o.etcd != nil && o.etcd.Server.MemberID() == lead {
				return o
			}
		}
	}
	return nil
}

// Follower returns a running member that is not the leader, or nil.
func (c *Cluster) Follower() *Member {
	lead := c.Leader()
	for _, m := range c.Members {
		if m.etcd != nil && m != lead {
			return m
		}
	}
	return nil
}
