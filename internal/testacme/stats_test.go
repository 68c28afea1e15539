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
