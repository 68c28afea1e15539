package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/renewkit/renewkit/lockfile"
)

var counter = Lineage{Name: "counter", Domains: []string{"counter.test"}}

// counterMain loops: take the lock of lineage "counter", read the backoff
// record's failure count, write it back plus one (fenced), print "ok N" for
// each write etcd acknowledged, unlock. Two holders at once, or a stale
// holder's write getting through, would show as the same N twice.
func counterMain() int {
	c, err := childClient()
	if err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		return 2
	}
	defer c.Close()
	ctx := context.Background()
	for {
		l, err := c.TryLockFenced(ctx, counter.Name)
		if errors.Is(err, lockfile.ErrLocked) || errors.Is(err, ErrUnavailable) {
			time.Sleep(time.Duration(rand.IntN(5)+1) * time.Millisecond)
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "counter:", err)
			return 2
		}
		snap, err := c.ReadStates(ctx, counter)
		if err == nil && snap.States[counter.Name].Err != nil {
			err = snap.States[counter.Name].Err
		}
		if err == nil {
			n := 1
			if b := snap.States[counter.Name].Backoff; b != nil {
				n = b.Failures + 1
			}
			// Work under the lock takes time (an ACME order does): the
			// window in which a pause makes this holder stale.
			time.Sleep(10 * time.Millisecond)
			switch err = c.PutBackoff(ctx, l, Backoff{Failures: n}); {
			case err == nil:
				fmt.Printf("ok %d\n", n)
			case errors.Is(err, ErrFenced), errors.Is(err, ErrUnavailable):
			default:
				fmt.Fprintln(os.Stderr, "counter:", err)
				return 2
			}
		}
		l.Unlock()
	}
}

// Never two writers, fleet-wide: holders race for one lineage's lock and
// increment a counter under it, while they are paused past their lease and
// killed at random (the parent pauses whichever holds the lock, so that the
// pause lands in the middle of its work). Every acknowledged increment is distinct and the final
// count is the highest one. RENEWKIT_FLEET_LONG=1 runs it for a minute with
// five holders instead of a few seconds with three.
func TestChaosNeverTwoWriters(t *testing.T) {
	holders, duration := 3, 5*time.Second
	if os.Getenv("RENEWKIT_FLEET_LONG") != "" {
		holders, duration = 5, time.Minute
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))

	cl := startCluster(t, 1)
	cfg := cl.config(t, "parent")
	p := dial(t, cfg)
	// Each holder's output is drained as it comes (a pipe must be read to
	// its end before Wait closes it); seen is only read after all are done.
	var mu sync.Mutex
	seen := make(map[int]string)
	var dup []string
	collect := func(i int, ch *child) <-chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for line := range ch.lines {
				n, err := strconv.Atoi(strings.TrimPrefix(line, "ok "))
				mu.Lock()
				if err != nil {
					dup = append(dup, fmt.Sprintf("holder %d said %q", i, line))
				} else if prev, ok := seen[n]; ok {
					dup = append(dup, fmt.Sprintf("%d by %s and holder %d", n, prev, i))
				} else {
					seen[n] = fmt.Sprintf("holder %d", i)
				}
				mu.Unlock()
			}
		}()
		return done
	}
	children := make([]*child, holders)
	drained := make([]<-chan struct{}, holders)
	start := func(i int) {
		children[i] = startChildMode(t, cfg, "counter", fmt.Sprintf("holder-%d", i))
		drained[i] = collect(i, children[i])
	}
	kill := func(i int) {
		children[i].cmd.Process.Kill()
		<-drained[i]
		children[i].cmd.Wait()
	}
	for i := range children {
		start(i)
	}
	stops, kills := 0, 0
	for deadline := time.Now().Add(duration); time.Now().Before(deadline); {
		i := rnd.IntN(holders)
		switch rnd.IntN(4) {
		case 0: // killed: a fresh process replaces it
			kill(i)
			start(i)
			kills++
		default: // the current holder is paused past its lease (1-2 TTLs)
			snap, err := p.ReadStates(t.Context(), counter)
			if err != nil {
				t.Fatal(err)
			}
			if h, ok := strings.CutPrefix(snap.States[counter.Name].Holder, "holder-"); ok {
				i, _ = strconv.Atoi(h)
			}
			children[i].cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(time.Second + time.Duration(rnd.IntN(1000))*time.Millisecond)
			children[i].cmd.Process.Signal(syscall.SIGCONT)
			stops++
		}
	}
	for i := range children {
		kill(i)
	}
	snap, err := p.ReadStates(t.Context(), counter)
	if err != nil {
		t.Fatal(err)
	}
	final := 0
	if b := snap.States[counter.Name].Backoff; b != nil {
		final = b.Failures
	}
	max := 0
	for n := range seen {
		max = maxInt(max, n)
	}
	t.Logf("%d holders, %d pauses, %d kills: %d acknowledged increments, final count %d", holders, stops, kills, len(seen), final)
	if len(dup) > 0 {
		t.Errorf("the same count written twice (two writers, or a stale write let through), or bad output: %v", dup)
	}
	// A write whose acknowledgement was lost with its killed writer may
	// count without being seen; nothing acknowledged may be missing.
	if final < max || len(seen) == 0 {
		t.Errorf("final count %d, highest acknowledged %d", final, max)
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
