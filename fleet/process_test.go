package fleet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/testchild"
	"github.com/renewkit/renewkit/lockfile"
)

// The crash-safety tests run a lock holder as a separate process (this test
// binary re-executed) so that it can be SIGKILLed and SIGSTOPped for real.

const childEnv = "RENEWKIT_FLEET_TEST_CHILD"

// TestFleetHelperProcess is the child's entry point (internal/testchild).
func TestFleetHelperProcess(t *testing.T) {
	switch os.Getenv(childEnv) {
	case "":
		t.Skip("the helper process of the crash-safety tests")
	case "counter":
		os.Exit(counterMain())
	default:
		os.Exit(childMain())
	}
}

func childClient() (*Client, error) {
	return Dial(Config{
		Endpoints:   strings.Split(os.Getenv("FLEET_ENDPOINTS"), ","),
		Prefix:      os.Getenv("FLEET_PREFIX"),
		SealKeyFile: os.Getenv("FLEET_SEAL_KEY"),
		Node:        os.Getenv("FLEET_NODE"),
		LockTTL:     time.Second,
	})
}

// childMain takes the lock of lineage www, says "locked", then runs the
// commands it reads on stdin, printing one result line each:
//
//	publish N   publish generation N (serial "child")
//	backoff     write the backoff record
//	journal     write the journal
func childMain() int {
	c, err := childClient()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer c.Close()
	ctx := context.Background()
	l, err := c.TryLockFenced(ctx, www.Name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	fmt.Printf("locked %d\n", l.Revision())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var err error
		switch cmd := strings.Fields(sc.Text()); cmd[0] {
		case "publish":
			var n int64
			fmt.Sscan(cmd[1], &n)
			err = c.PublishGeneration(ctx, l, www, testGeneration(n, "child"))
		case "backoff":
			err = c.PutBackoff(ctx, l, Backoff{Failures: 7, LastError: "stale"})
		case "journal":
			err = c.PutJournal(ctx, l, www, Journal{OrderURL: "https://ca.test/stale", Names: www.Domains, KeyPEM: []byte("stale key")})
		}
		fmt.Printf("%s fenced=%t err=%v\n", sc.Text(), errors.Is(err, ErrFenced), err)
	}
	return 0
}

// child is a lock-holder process; lines is its output, read until it ends.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines <-chan string
}

func startChild(t *testing.T, cfg Config) *child {
	t.Helper()
	return startChildMode(t, cfg, "holder", "child")
}

func startChildMode(t *testing.T, cfg Config, mode, node string) *child {
	t.Helper()
	c := testchild.Start(t, "TestFleetHelperProcess", childEnv+"="+mode, "FLEET_NODE="+node,
		"FLEET_ENDPOINTS="+strings.Join(cfg.Endpoints, ","),
		"FLEET_PREFIX="+cfg.Prefix, "FLEET_SEAL_KEY="+cfg.SealKeyFile)
	return &child{cmd: c.Cmd, stdin: c.Stdin, lines: c.Lines()}
}

// line returns the child's next output line.
func (ch *child) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-ch.lines:
		if !ok {
			t.Fatal("child exited early")
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatal("no output from the child after 60s")
	}
	return ""
}

// waitLock polls TryLock until it succeeds, for at most d.
func waitLock(t *testing.T, c *Client, lineage string, d time.Duration) *Lock {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		l, err := c.TryLockFenced(t.Context(), lineage)
		if err == nil {
			return l
		}
		if !errors.Is(err, lockfile.ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("lock %s not free after %v: %v", lineage, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLockFreedWhenHolderKilled(t *testing.T) {
	cl := startCluster(t, 1)
	cfg := cl.config(t, "parent")
	p := dial(t, cfg)
	ch := startChild(t, cfg)
	if l := ch.line(t); !strings.HasPrefix(l, "locked ") {
		t.Fatalf("child: %q", l)
	}
	var he *lockfile.HeldError
	if _, err := p.TryLockFenced(t.Context(), www.Name); !errors.As(err, &he) || he.Node != "child" {
		t.Fatalf("TryLock while the child holds the lock: %v, want held by node child", err)
	}
	if err := ch.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	ch.cmd.Wait()
	killed := time.Now()
	// The lease (TTL 1s) ends with its last keep-alive; allow for slow CI.
	waitLock(t, p, www.Name, 15*time.Second)
	t.Logf("lock free %v after SIGKILL (TTL 1s)", time.Since(killed).Round(time.Millisecond))
}

func TestPausedHolderIsFenced(t *testing.T) {
	cl := startCluster(t, 1)
	cfg := cl.config(t, "parent")
	p := dial(t, cfg)
	ctx := t.Context()
	l := waitLock(t, p, www.Name, 0)
	if err := p.PublishGeneration(ctx, l, www, testGeneration(1, "first")); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}

	ch := startChild(t, cfg)
	if l := ch.line(t); !strings.HasPrefix(l, "locked ") {
		t.Fatalf("child: %q", l)
	}
	// (1) The holder freezes (GC pause, VM freeze) past its lease ...
	if err := ch.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// (2) ... another node takes over and renews ...
	l = waitLock(t, p, www.Name, 15*time.Second)
	if err := p.PublishGeneration(ctx, l, www, testGeneration(2, "parent")); err != nil {
		t.Fatal(err)
	}
	// (3) ... and the holder wakes up and carries on where it stopped: with a
	// generation number that is higher, so only fencing stops it.
	if _, err := io.WriteString(ch.stdin, "publish 10\nbackoff\njournal\n"); err != nil {
		t.Fatal(err)
	}
	ch.stdin.Close()
	if err := ch.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := ch.line(t); !strings.Contains(got, "fenced=true") || !strings.Contains(got, `"parent"`) {
			t.Errorf("stale holder's write: %q, want refused by fencing naming the new holder", got)
		}
	}
	snap, err := p.ReadStates(ctx, www)
	if err != nil {
		t.Fatal(err)
	}
	st := snap.States[www.Name]
	if st.Err != nil || st.Meta == nil || st.Meta.Number != 2 || st.Meta.Serial != "parent" || st.Backoff != nil || st.Journal != nil {
		t.Errorf("state after the stale holder woke: %+v, want generation 2 by parent and nothing else", st)
	}
	g, err := p.ReadGeneration(ctx, www)
	if err != nil || g.Serial != "parent" {
		t.Errorf("bundle after the stale holder woke: %v %+v", err, g)
	}
}
