//go:build !unix

package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"
)

// supported refuses platforms where the checks cannot be promised (no
// O_NOFOLLOW, no owner in a FileInfo), with atomicfs's message.
func supported() error {
	return fmt.Errorf("atomicfs: not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// OwnerUID returns the owner of the file described by fi: unknown here.
func OwnerUID(fs.FileInfo) (int, bool) { return 0, false }

// ReadFile cannot promise its checks here: supported refuses the platform
// before any open.
const (
	openNonBlock = 0
	openNoFollow = 0
)

func isSymlinkErr(error) bool { return false }
