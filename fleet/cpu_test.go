package fleet

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestFigureView1000CPU measures the CPU time (this process's: the client
// and the embedded etcd server together) of one View of 1,000 lineages:
// a figure that a loaded machine distorts less than wall-clock time. Set
// RENEWKIT_FLEET_CPU=1.
func TestFigureView1000CPU(t *testing.T) {
	if os.Getenv("RENEWKIT_FLEET_CPU") == "" {
		t.Skip("a figure: set RENEWKIT_FLEET_CPU=1")
	}
	c, certs := fill1000(t)
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for range 5 { // warm up
		if _, err := c.View(t.Context(), certs); err != nil {
			t.Fatal(err)
		}
	}
	const n = 100
	start, wall := cpu(), time.Now()
	for range n {
		if _, err := c.View(t.Context(), certs); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("FIGURE View of 1,000 lineages: %v CPU per View (client and etcd server), %v wall, over %d Views",
		((cpu() - start) / n).Round(10*time.Microsecond), (time.Since(wall) / n).Round(10*time.Microsecond), n)
}
