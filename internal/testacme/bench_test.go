package testacme_test

import (
	"testing"

	"github.com/go-acme/lego/v5/lego"

	"github.com/renewkit/renewkit/internal/testacme"
)

// BenchmarkStart measures Start + Close: CA keys (ECDSA), DNS responder,
// port reservations, TLS listener, CA file. Each iteration leaves Pebble's
// VA goroutine behind (see the package documentation).
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		s, err := testacme.Start(testacme.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssue: one ECDSA P-256 certificate for one name per operation,
// with real HTTP-01 validation (built-in token server), a tuned lego client.
// "serial": one client, one obtain at a time; "parallel": GOMAXPROCS×4
// clients at once (throughput).
func BenchmarkIssue(b *testing.B) {
	benchIssue(b, testacme.Options{ServeHTTP01: true})
}

// BenchmarkIssueAlwaysValid: like BenchmarkIssue without validation requests.
func BenchmarkIssueAlwaysValid(b *testing.B) {
	benchIssue(b, testacme.Options{ServeHTTP01: true, AlwaysValid: true})
}

func benchIssue(b *testing.B, opts testacme.Options) {
	s := startServer(b, opts)
	client := func() *lego.Client {
		c := newClient(b, s)
		if err := c.Challenge.SetHTTP01Provider(s.HTTP01Provider()); err != nil {
			b.Fatal(err)
		}
		return c
	}
	b.Run("serial", func(b *testing.B) {
		c := client()
		for b.Loop() {
			if _, err := obtain(b.Context(), c, "default", names(1)...); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			c := client()
			for pb.Next() {
				if _, err := obtain(b.Context(), c, "default", names(1)...); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
