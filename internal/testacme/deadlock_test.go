package testacme_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/testacme"
)

// TestConcurrentOrdersDoNotDeadlock reproduces a lock-order cycle in Pebble
// that freezes the whole CA when orders run concurrently (its Authz handler
// takes the store lock while holding an authorization's; newOrder and order
// reads do the opposite; a store writer in between closes the cycle). Before
// the middleware kept Authz requests apart from the others, this test froze
// it in 1 run of 8, and BenchmarkIssue/parallel (300 orders on a server that
// had issued 300 already) in about 1 run of 2.
func TestConcurrentOrdersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{ServeHTTP01: true})
	const workers, each = 8, 40
	// A deadlock is a CA that stops making progress: the test fails when no
	// issuance completes for stallLimit, however long all of them take (a
	// bound on the total, 90 s, was missed by a loaded machine with
	// nothing frozen). A real deadlock also shows in Close ("requests
	// still running in Pebble").
	const stallLimit = time.Minute
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	progress := make(chan struct{}, workers)
	stalled := make(chan struct{})
	go func() {
		timer := time.NewTimer(stallLimit)
		defer timer.Stop()
		for {
			select {
			case <-progress:
				timer.Reset(stallLimit)
			case <-timer.C:
				close(stalled)
				cancel()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		c := newClient(t, s)
		if err := c.Challenge.SetHTTP01Provider(s.HTTP01Provider()); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for range each {
				if _, err := obtain(ctx, c, "default", names(2)...); err != nil {
					select {
					case <-stalled:
						t.Errorf("Obtain: %v: no issuance completed for %v, the CA is deadlocked", err, stallLimit)
					default:
						t.Errorf("Obtain: %v", err)
					}
					return
				}
				select {
				case progress <- struct{}{}:
				default: // the watchdog has one to read already
				}
			}
		})
	}
	wg.Wait()
	cancel()
	if st := s.Stats(); st.Issued != workers*each {
		t.Errorf("issued %d, want %d", st.Issued, workers*each)
	}
}
