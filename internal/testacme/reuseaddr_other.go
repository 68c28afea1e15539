//go:build !unix

package testacme

// setNoReuseAddr does nothing where loopport reserves no port (outside
// Linux a reserved port is released at once; see package loopport).
func setNoReuseAddr(uintptr) error { return nil }
