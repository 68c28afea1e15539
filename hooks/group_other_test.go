//go:build unix && !linux

package hooks

func addLinuxRoles(map[string]func() error) {}
