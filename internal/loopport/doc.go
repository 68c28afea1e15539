// Package loopport reserves loopback TCP ports for tests: a port reserved
// here is kept out of the kernel's choice for bind(port 0) until released,
// yet a Go listener (SO_REUSEADDR) can still bind and listen on it. The
// test CA reserves its challenge ports this way and the embedded etcd
// clusters their members' ports, so that a member restarted on its port
// never takes the port a CLI child is about to listen on.
package loopport
