//go:build unix

package acmeissuer

import (
	"errors"
	"os"
	"syscall"
)

// openNoFollow opens path for reading, refusing a symbolic link (ELOOP)
// and not blocking on a FIFO or a device.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
}

func isSymlinkErr(err error) bool { return errors.Is(err, syscall.ELOOP) }
