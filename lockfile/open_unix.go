//go:build unix

package lockfile

import (
	"os"
	"syscall"
)

// openFlag opens the lock file read-write (so an NFS-emulated exclusive lock
// works without gofrs/flock's reopen detour) and refuses a symbolic link as the
// last path component.
const openFlag = os.O_CREATE | os.O_RDWR | syscall.O_NOFOLLOW

const noFollow = syscall.O_NOFOLLOW

// nonBlock keeps the open of a FIFO from blocking.
const nonBlock = syscall.O_NONBLOCK

func supported() error { return nil }
