package durable

import "os"

// The naming of renameio's temporary entries (".<name><digits>") is not
// part of its API; atomicfs's Recover and RemoveTemps rely on it only
// through the two functions below, and TestIsTempMatchesRenameio checks it
// against renameio itself.

// IsTemp reports whether name has the form renameio gives temporary
// entries: "." + the target's name + decimal digits, for a target in targets.
func IsTemp(name string, targets map[string]bool) bool {
	if len(name) < 3 || name[0] != '.' {
		return false
	}
	i := len(name)
	for i > 1 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	// The target's name may itself end in digits: try every split.
	for j := i; j < len(name); j++ {
		if j > 1 && targets[name[1:j]] {
			return true
		}
	}
	return false
}

// IsSymlinkTempDir reports whether dir looks like renameio.Symlink's temporary
// directory: empty, or holding only "tmp.symlink".
func IsSymlinkTempDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	return len(entries) == 0 || (len(entries) == 1 && entries[0].Name() == "tmp.symlink")
}
