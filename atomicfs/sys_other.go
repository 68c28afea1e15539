//go:build !unix

package atomicfs

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"
)

// supported refuses platforms where directory fsync, rename-over-a-symlink and
// renameio are not available: no promise is better than a broken one.
func supported() error {
	return fmt.Errorf("atomicfs: not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func syncDir(string) error { return supported() }

func newPendingFile(string) (pendingFile, error) { return nil, supported() }

func ownerUID(fs.FileInfo) (int, bool) { return 0, false }

// ReadFile cannot promise its checks here: supported refuses the platform
// before any open.
const (
	openNonBlock = 0
	openNoFollow = 0
)

func isSymlinkErr(error) bool { return false }
