//go:build !linux

package loopport

import (
	"fmt"
	"net"
)

// Reserve picks a free TCP port on 127.0.0.1 by listening on port 0 and
// closing the listener at once. Outside Linux nothing keeps the port reserved
// afterwards: another process may take it before the caller binds it (rare;
// a test that hits it fails with "address already in use").
func Reserve() (port int, release func() error, err error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, nil, fmt.Errorf("reserve port: %w", err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, nil, fmt.Errorf("reserve port: %w", err)
	}
	return port, func() error { return nil }, nil
}
