package testacme_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/go-acme/lego/v5/acme/api"

	"github.com/renewkit/renewkit/internal/testacme"
)

func TestStatsCounts(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{AlwaysValid: true})
	c := newClient(t, s)
	if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
		t.Fatal(err)
	}
	a, b := names(2), names(1)
	for range 3 {
		if _, err := obtain(t.Context(), c, "default", a...); err != nil {
			t.Fatal(err)
		}
	}
	// One failed order for b: finalize refused, nothing issued.
	s.Inject(testacme.ServerInternal(testacme.EndpointFinalize, 1))
	if _, err := obtain(t.Context(), c, "default", b...); err == nil {
		t.Fatal("Obtain succeeded through a finalize fault")
	}
	tests := []struct {
		name    string
		domains []string
		want    testacme.Stats
	}{
		{"set a", a, testacme.Stats{Orders: 3, Issued: 3, MaxConcurrentOrders: 1}},
		{"set a, other order and case", []string{a[1], strings.ToUpper(a[0])}, testacme.Stats{Orders: 3, Issued: 3, MaxConcurrentOrders: 1}},
		{"set b", b, testacme.Stats{Orders: 1, Issued: 0, MaxConcurrentOrders: 1}},
		{"subset of a is another set", a[:1], testacme.Stats{}},
		{"totals", nil, testacme.Stats{Orders: 4, Issued: 3, MaxConcurrentOrders: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Stats(tt.domains...); got != tt.want {
				t.Errorf("Stats(%v) = %+v, want %+v", tt.domains, got, tt.want)
			}
		})
	}
}

// TestStatsConcurrentOrders drives orders with the low-level API so that
// the timeline is exact: an order abandoned (its client "killed") stops
// counting at its last request; two orders are concurrent when one is
// created while the other still has requests to come.
func TestStatsConcurrentOrders(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{AlwaysValid: true})
	domains := names(1)
	core := newCore(t, s)
	ctx := t.Context()

	abandoned, err := core.Orders.New(ctx, domains, &api.OrderOptions{Profile: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Orders.Get(ctx, abandoned.Location); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(domains...); st.Orders != 1 || st.MaxConcurrentOrders != 1 {
		t.Fatalf("after one order: %+v", st)
	}

	a, err := core.Orders.New(ctx, domains, &api.OrderOptions{Profile: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(domains...); st.MaxConcurrentOrders != 1 {
		t.Fatalf("abandoned order counted as in flight: %+v", st)
	}
	if _, err := core.Orders.New(ctx, domains, &api.OrderOptions{Profile: "default"}); err != nil {
		t.Fatal(err)
	}
	// a is still being worked on after b was created: they overlap.
	if _, err := core.Authorizations.Get(ctx, a.Authorizations[0]); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(domains...); st.Orders != 3 || st.MaxConcurrentOrders != 2 {
		t.Fatalf("Stats = %+v, want 3 orders, max 2 concurrent", st)
	}
	if st := s.Stats(); st.MaxConcurrentOrders != 2 {
		t.Fatalf("totals = %+v, want max 2 concurrent", st)
	}
}

// TestStatsParallelClients: several lego clients issuing for different
// names at once; totals add up, each set saw one order at a time.
func TestStatsParallelClients(t *testing.T) {
	t.Parallel()
	s := startServer(t, testacme.Options{ServeHTTP01: true})
	const workers, each = 4, 3
	sets := make([][]string, workers)
	var wg sync.WaitGroup
	for i := range workers {
		sets[i] = names(2)
		c := newClient(t, s)
		if err := c.Challenge.SetHTTP01Provider(s.HTTP01Provider()); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for range each {
				if _, err := obtain(t.Context(), c, "default", sets[i]...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, set := range sets {
		if st := s.Stats(set...); st.Orders != each || st.Issued != each || st.MaxConcurrentOrders != 1 {
			t.Errorf("Stats(%v) = %+v", set, st)
		}
	}
	if st := s.Stats(); st.Orders != workers*each || st.Issued != workers*each {
		t.Errorf("totals = %+v", st)
	}
}

// TestFinalizations: every finalize request that reaches the CA is listed
// for its identifier set, in arrival order, with the position Sequence gave
// at its arrival, whether Pebble issued or an injected fault refused it;
// an order that never sent one is not listed.
func TestFinalizations(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events int64 // the test's own record: one event per step below
	s := startServer(t, testacme.Options{AlwaysValid: true, Sequence: func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return events
	}})
	step := func() {
		mu.Lock()
		events++
		mu.Unlock()
	}
	c := newClient(t, s)
	if err := c.Challenge.SetHTTP01Provider(nopProvider{}); err != nil {
		t.Fatal(err)
	}
	a, b := names(2), names(1)
	step()
	if _, err := obtain(t.Context(), c, "default", a...); err != nil {
		t.Fatal(err)
	}
	step()
	s.Inject(testacme.ServerInternal(testacme.EndpointFinalize, 1))
	if _, err := obtain(t.Context(), c, "default", b...); err == nil {
		t.Fatal("Obtain succeeded through a finalize fault")
	}
	step()
	if _, err := obtain(t.Context(), c, "default", a...); err != nil {
		t.Fatal(err)
	}

	fa := s.Finalizations(strings.ToUpper(a[1]), a[0]) // order and case do not matter
	if len(fa) != 2 || fa[0].Seq != 1 || fa[1].Seq != 3 || fa[0].Order == fa[1].Order {
		t.Fatalf("Finalizations(a) = %+v, want two orders at 1 and 3", fa)
	}
	if got := strings.Join(fa[0].Identifiers, ","); got != strings.Join(a, ",") && got != a[1]+","+a[0] {
		t.Errorf("identifiers %q, want the set %v", got, a)
	}
	if fb := s.Finalizations(b...); len(fb) != 1 || fb[0].Seq != 2 {
		t.Errorf("Finalizations(b) = %+v, want the refused one at 2", fb)
	}
	if all := s.Finalizations(); len(all) != 3 || all[0].Seq != 1 || all[1].Seq != 2 || all[2].Seq != 3 {
		t.Errorf("Finalizations() = %+v, want three in arrival order", all)
	}
	if n := len(s.Finalizations(names(1)...)); n != 0 {
		t.Errorf("an identifier set never ordered has %d finalizations", n)
	}
	if fa[1].Arrived.Before(fa[0].Arrived) {
		t.Errorf("arrival times out of order: %v", fa)
	}
}
