//go:build !unix

package fleet

import "io/fs"

// noFollow is not available: the mode checks of readSecretFile still apply.
const noFollow = 0

// ownerUID is unknown on this system.
func ownerUID(fs.FileInfo) (int, bool) { return 0, false }
