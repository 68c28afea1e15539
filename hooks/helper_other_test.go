//go:build !unix

package hooks

func addPlatformRoles(map[string]func() error) {}
