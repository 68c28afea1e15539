// Package lineagefix builds lineage directories for benchmarks: thousands
// of installed, not-due lineages made from one real one without thousands
// of issuances. It is test tooling, not part of renewkit's API.
package lineagefix

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/renewkit/renewkit/atomicfs"
)

// Clone makes dst a copy of the lineage directory src, which must hold one
// generation (000001): the generation's files are hard-linked (generations
// are immutable, so sharing inodes changes nothing a reader can see), the
// current and stable links are recreated, and state.json is copied.
func Clone(src, dst string) error {
	gen := filepath.Join("generations", "000001")
	if err := os.MkdirAll(filepath.Join(dst, gen), 0o755); err != nil {
		return err
	}
	for _, f := range []string{atomicfs.CertFile, atomicfs.ChainFile, atomicfs.FullchainFile, atomicfs.KeyFile, atomicfs.CombinedFile} {
		if err := os.Link(filepath.Join(src, gen, f), filepath.Join(dst, gen, f)); err != nil {
			return fmt.Errorf("clone %s: %w", src, err)
		}
		if err := os.Symlink(filepath.Join(atomicfs.CurrentLink, f), filepath.Join(dst, f)); err != nil {
			return err
		}
	}
	if err := os.Symlink(gen, filepath.Join(dst, atomicfs.CurrentLink)); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(src, atomicfs.StateFile))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, atomicfs.StateFile), b, 0o600) // as renew writes it: the no-op path wants that mode
}
