package etcdtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func client(t *testing.T, c *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// put writes key=value through a quorum, failing the test after a timeout.
func put(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(t.Context()), 20*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func TestSingleMember(t *testing.T) {
	c := etcdtest.Start(t, 1)
	m := c.Members[0]
	if !m.Running() || c.WaitLeader() != m || c.Follower() != nil {
		t.Fatalf("single member: running %t, leader %v", m.Running(), c.Leader())
	}
	put(t, client(t, c), "k", "v")
	// Stopped and restarted, the member keeps its data.
	c.Stop(m)
	if m.Running() || c.Leader() != nil {
		t.Fatal("stopped member still running or leading")
	}
	c.Restart(m)
	resp, err := client(t, c).Get(t.Context(), "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v, want k=v", resp, err)
	}
}

// A 3-member cluster loses its leader, elects another, loses a majority
// and comes back when the majority is restarted together.
func TestThreeMembers(t *testing.T) {
	c := etcdtest.Start(t, 3)
	if len(c.Endpoints()) != 3 {
		t.Fatalf("endpoints %v", c.Endpoints())
	}
	cli := client(t, c)
	put(t, cli, "a", "1")
	lead := c.WaitLeader()
	c.Stop(lead)
	next := c.WaitLeader()
	if next == lead || !next.Running() {
		t.Fatalf("new leader %s after stopping %s", next.Name, lead.Name)
	}
	put(t, cli, "b", "2")
	f := c.Follower()
	c.Stop(f)
	if c.Leader() != nil {
		t.Fatal("a leader among one of three members")
	}
	c.Restart(lead, f)
	c.WaitLeader()
	put(t, cli, "c", "3")
	resp, err := cli.Get(t.Context(), "", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 3 {
		t.Fatalf("after the majority came back: %v %v, want the three keys", resp, err)
	}
}
