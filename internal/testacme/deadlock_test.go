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
	// Generous: the machine may be loaded. A real deadlock also shows in
	// Close ("requests still running in Pebble").
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		c := newClient(t, s)
		if err := c.Challenge.SetHTTP01Provider(s.HTTP01Provider()); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for range each {
				if _, err := obtain(ctx, c, "default", names(2)...); err != nil {
					t.Errorf("Obtain: %v (deadlocked CA?)", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Issued != workers*each {
		t.Errorf("issued %d, want %d", st.Issued, workers*each)
	}
}
