package fleet

import (
	"errors"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/etcdtest"
)

// waitOK retries op while it fails with ErrUnavailable, for at most d: what a
// node does when etcd has no quorum (defer, try again later).
func waitOK(t *testing.T, what string, d time.Duration, op func() error) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		err := op()
		if err == nil {
			t.Logf("%s: done after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Members stop mid-renewal: one, then the leader (majority down), then one
// comes back; then the new leader stops while a quorum remains.
func TestClusterMemberLoss(t *testing.T) {
	cl := startCluster(t, 3)
	cfg := cl.config(t, "node-a")
	cfg.LockTTL = 10 * time.Second // outlives the outages below
	c := dial(t, cfg)
	ctx := t.Context()
	l := waitLock(t, c, www.Name, 0)
	if err := c.PublishGeneration(ctx, l, www, testGeneration(1, "g1")); err != nil {
		t.Fatal(err)
	}
	failures := 0
	backoff := func() error {
		failures++
		return c.PutBackoff(ctx, l, Backoff{Failures: failures})
	}

	// A follower stops: the holder carries on.
	lead := cl.WaitLeader()
	var follower *etcdtest.Member
	for _, m := range cl.Members {
		if m != lead {
			follower = m
			break
		}
	}
	cl.Stop(follower)
	waitOK(t, "write with one follower down", 20*time.Second, backoff)

	// The leader stops too: no quorum. Every call fails with ErrUnavailable
	// within the request timeout; nothing hangs.
	cl.Stop(lead)
	for what, op := range map[string]func() error{
		"write": backoff,
		"read":  func() error { _, err := c.ReadStates(ctx, www); return err },
		"lock":  func() error { _, err := tryLock(ctx, c, "api"); return err },
	} {
		start := time.Now()
		if err := op(); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s without quorum: %v, want ErrUnavailable", what, err)
		}
		// A lock is two calls (grant a lease, then the transaction).
		took := time.Since(start)
		t.Logf("%s without quorum: ErrUnavailable after %v", what, took.Round(time.Millisecond))
		if took > 2*cfg.RequestTimeout+2*time.Second {
			t.Errorf("%s without quorum took %v, want it bounded by the %v request timeout", what, took, cfg.RequestTimeout)
		}
	}

	// A member comes back: the renewal waits, then completes under the
	// same lock (its lease outlived the outage).
	cl.Restart(follower)
	waitOK(t, "publish once a quorum is back", 30*time.Second, func() error {
		err := c.PublishGeneration(ctx, l, www, testGeneration(2, "g2"))
		if errors.Is(err, ErrNotNewer) {
			return nil // an attempt reported unavailable did commit
		}
		return err
	})

	// The old leader returns, and the new leader stops: the quorum stays, a
	// new leader is elected, work goes on.
	cl.Restart(lead)
	waitOK(t, "write with all members back", 30*time.Second, backoff)
	cl.Stop(cl.WaitLeader())
	waitOK(t, "write after a leader change", 30*time.Second, backoff)

	snap, err := c.ReadStates(ctx, www)
	if err != nil {
		t.Fatal(err)
	}
	st := snap.States[www.Name]
	if st.Err != nil || st.Meta == nil || st.Meta.Serial != "g2" || st.Backoff == nil || st.Backoff.Failures != failures {
		t.Errorf("final state %+v (backoff %+v), want generation g2 and the last backoff write %d", st, st.Backoff, failures)
	}
}
