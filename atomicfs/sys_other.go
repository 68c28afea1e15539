//go:build !unix

package atomicfs

import (
	"errors"
	"fmt"
	"runtime"
)

// supported refuses platforms where directory fsync, rename-over-a-symlink and
// renameio are not available: no promise is better than a broken one.
func supported() error {
	return fmt.Errorf("atomicfs: not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func syncDir(string) error { return supported() }

func newPendingFile(string) (pendingFile, error) { return nil, supported() }
