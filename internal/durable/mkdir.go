package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MkdirAll creates the directory path and any missing parents with mode
// perm (before the umask), like [os.MkdirAll], and makes what it created
// durable: it fsyncs the parent of every directory it created. Without
// that, a power loss after files were durably written inside a new
// directory can lose the directory's own entry, and every file under it
// with it (a storage root or account directory made on the first run).
// A path that exists already costs one stat and no fsync.
func MkdirAll(path string, perm fs.FileMode) error {
	if err := Supported(); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	// The directories that do not exist yet, deepest first.
	var missing []string
	for p := filepath.Clean(path); ; {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("create %s: %s is not a directory", path, p)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("create %s: %w", path, err)
		}
		missing = append(missing, p)
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(path, perm); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	// fsync each new directory's parent, so that its entry survives a
	// power loss.
	for i := len(missing) - 1; i >= 0; i-- {
		if err := SyncDir(filepath.Dir(missing[i])); err != nil {
			return fmt.Errorf("create %s: sync %s: %w", path, filepath.Dir(missing[i]), err)
		}
	}
	return nil
}
