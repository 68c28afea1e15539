//go:build !renewkit_crashpoints

package crashpoint

const enabled = false

// Hit marks the crash point scope.step. Without the renewkit_crashpoints
// build tag it does nothing, and costs nothing once inlined.
func Hit(scope, step string) {}
