package durable

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/renewkit/renewkit/internal/crashpoint"
)

// pendingFile is the part of *renameio.PendingFile this package uses.
type pendingFile interface {
	io.Writer
	Name() string
	Chown(uid, gid int) error
	Chmod(mode fs.FileMode) error
	CloseAtomicallyReplace() error
	Cleanup() error
}

// WriteFile atomically and durably replaces (or creates) the file at path with
// data and mode perm. perm is applied exactly, whatever the umask or the mode of
// the file being replaced.
//
// The steps, marked in the body:
//
//  1. Create a temporary file .<name><digits> in the same directory with mode
//     0600 (or less), then set perm before any byte is written.
//  2. Write data.
//  3. fsync the temporary file, close it, rename it over path.
//  4. fsync the directory.
//
// A crash before (3) leaves path untouched and a temporary file (see
// [IsTemp]) that atomicfs's Store.Recover deletes when path is in a lineage
// directory, and [RemoveTemps] elsewhere. A crash after (3)
// leaves the new file whole (visible at once, durable after (4)). On any error
// the old file is untouched and the temporary file is removed.
//
// The directory must exist. If path is a symbolic link, the link itself is
// replaced, not its target.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, data, Options{Perm: perm, GID: -1})
}

// WriteFileNoDirSync is [WriteFile] without its step (4), the fsync of
// the directory: the new file is whole once visible (it is fsynced before
// the rename), but a power loss may undo the rename and bring back the
// previous file, whole. It is for state whose loss is harmless but which
// must never be torn, such as a record that work already done is done
// (losing it means the work is done again). It saves one fsync.
func WriteFileNoDirSync(path string, data []byte, perm fs.FileMode) error {
	return Write(path, data, Options{Perm: perm, GID: -1, NoDirSync: true})
}

// Options are how [Write] writes a file.
type Options struct {
	// Perm is the file's mode, applied exactly.
	Perm fs.FileMode
	// GID is the group given to the file, while its mode is still 0600; -1
	// leaves the process's.
	GID int
	// Crash, when not nil, is called with the name of each step
	// ("writefile:1" … "writefile:4", "writefile:done") before it runs: a
	// test seam, as the crash points are.
	Crash func(step string)
	// NoDirSync leaves out step (4), as [WriteFileNoDirSync] does.
	NoDirSync bool
}

// Write is [WriteFile] with the group, the directory fsync and a crash
// seam chosen by o.
func Write(path string, data []byte, o Options) (err error) {
	if o.Perm&^fs.ModePerm != 0 {
		return fmt.Errorf("write %s: mode %v has more than permission bits", path, o.Perm)
	}
	hit := func(step string) {
		crashpoint.Hit("durable", step)
		if o.Crash != nil {
			o.Crash(step)
		}
	}

	// (1) Temporary file beside path, mode ≤ 0600; group, then final mode.
	hit("writefile:1")
	pf, err := newPendingFile(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		// A no-op once (3) succeeded; otherwise removes the temporary file.
		if cerr := pf.Cleanup(); cerr != nil && err != nil {
			err = errors.Join(err, fmt.Errorf("remove temporary file: %w", cerr))
		}
	}()
	// chown while the mode is still 0600, so that the group never gains access
	// to the file before it has its final mode; then the final mode.
	if o.GID >= 0 {
		if err := pf.Chown(-1, o.GID); err != nil {
			return fmt.Errorf("write %s: set group %d: %w", path, o.GID, err)
		}
	}
	if o.Perm != 0o600 {
		if err := pf.Chmod(o.Perm); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}

	// (2) The data.
	hit("writefile:2")
	if _, err := pf.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", pf.Name(), err)
	}

	// (3) fsync the temporary file so that its data is on disk before the name
	// points at it (without it, a power loss after the rename can leave a
	// zero-length file), then close and rename it over path.
	hit("writefile:3")
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}

	// (4) fsync the directory: renameio does not, and until the directory is on
	// disk a power loss can undo the rename (bringing back the old file, or no
	// file at all for a new one).
	hit("writefile:4")
	if !o.NoDirSync {
		if err := SyncDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("replace %s: sync directory: %w", path, err)
		}
	}
	hit("writefile:done")
	return nil
}

// RemoveTemps deletes the temporary files that a [WriteFile] of path killed
// midway left beside it (".<name><digits>"), for files kept outside a
// lineage directory, where atomicfs's Store.Recover does not look. With a zero
// before, the caller must hold whatever lock serialises writers of path: a
// temporary file of a write in progress would be deleted too. A caller
// without such a lock passes a non-zero before: only files last modified
// before it are deleted, which a write in progress, far younger, never is.
// It returns the paths removed, and stops at the first file it cannot
// remove.
func RemoveTemps(path string, before time.Time) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("remove temporary files of %s: %w", path, err)
	}
	targets := map[string]bool{base: true}
	var removed []string
	for _, e := range entries {
		if e.Type().IsRegular() && IsTemp(e.Name(), targets) {
			if !before.IsZero() {
				if fi, err := e.Info(); err != nil || !fi.ModTime().Before(before) {
					continue
				}
			}
			p := filepath.Join(dir, e.Name())
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, fmt.Errorf("remove temporary files of %s: %w", path, err)
			}
			removed = append(removed, p)
		}
	}
	return removed, nil
}
