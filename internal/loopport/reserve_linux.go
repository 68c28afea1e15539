//go:build linux

package loopport

import (
	"fmt"
	"syscall"
)

// Reserve picks a free TCP port on 127.0.0.1 and keeps it reserved for
// the caller without listening on it.
//
// It binds a socket with SO_REUSEADDR and never calls listen(2). Linux then
// (a) lets another socket that also sets SO_REUSEADDR (every Go listener
// does) bind and listen on that port, because a bound-but-not-listening
// socket does not conflict with it, and (b) keeps the port out of the
// ephemeral range handed to bind(port 0), so no other test picks the same
// port while it is reserved. The alternative, listening on :0 and closing,
// leaves a window in which the kernel may hand the port to someone else.
func Reserve() (port int, release func() error, err error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("reserve port: socket: %w", err)
	}
	fail := func(what string, err error) (int, func() error, error) {
		_ = syscall.Close(fd)
		return 0, nil, fmt.Errorf("reserve port: %s: %w", what, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail("bind 127.0.0.1:0", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		return fail("getsockname", fmt.Errorf("unexpected address type %T", sa))
	}
	return in4.Port, func() error { return syscall.Close(fd) }, nil
}
