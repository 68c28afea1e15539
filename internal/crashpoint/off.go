//go:build !renewkit_crashpoints

package crashpoint

const enabled = false

// Hit marks a named crash point. Without the renewkit_crashpoints build tag it
// does nothing.
func Hit(name string) {}
