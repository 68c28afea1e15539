package served_test

import (
	"testing"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/internal/served"
)

// TestNamesMatchAtomicfs: the oracle's copy of the stable link names is the
// layout atomicfs writes.
func TestNamesMatchAtomicfs(t *testing.T) {
	for _, n := range []struct{ oracle, layout string }{
		{served.CertFile, atomicfs.CertFile},
		{served.ChainFile, atomicfs.ChainFile},
		{served.FullchainFile, atomicfs.FullchainFile},
		{served.KeyFile, atomicfs.KeyFile},
		{served.CombinedFile, atomicfs.CombinedFile},
	} {
		if n.oracle != n.layout {
			t.Errorf("served has %q where atomicfs writes %q", n.oracle, n.layout)
		}
	}
}
