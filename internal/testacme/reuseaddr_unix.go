//go:build unix

package testacme

import "syscall"

// setNoReuseAddr clears SO_REUSEADDR on a socket before it is bound.
func setNoReuseAddr(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 0)
}
