//go:build unix

package safefile

import (
	"errors"
	"io/fs"
	"syscall"
)

func supported() error { return nil }

// OwnerUID returns the owner of the file described by fi.
func OwnerUID(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// Flags of ReadFile's open: never block on a FIFO or a device, and refuse a
// symbolic link as the last component where asked.
const (
	openNonBlock = syscall.O_NONBLOCK
	openNoFollow = syscall.O_NOFOLLOW
)

// isSymlinkErr reports whether err is an open's refusal (O_NOFOLLOW) to
// follow a symbolic link.
func isSymlinkErr(err error) bool { return errors.Is(err, syscall.ELOOP) }
