package lockfile

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/renewkit/renewkit/atomicfs"
)

// Locker hands out exclusive locks by key, one key per lineage. It is what the
// renewal code consumes, so that a distributed lock can replace [DirLocker].
//
// Implementations must be safe for concurrent use, must not wait for a held lock
// (contention returns an error matching [ErrLocked] at once), and must honour ctx
// in any network round trip. unlock is idempotent. Whoever gets the lock must
// re-check the state it guards: another holder may have done the work meanwhile.
type Locker interface {
	TryLock(ctx context.Context, key string) (unlock func() error, err error)
}

var _ Locker = (*DirLocker)(nil)

// DirLocker is a [Locker] that locks root/<key>/.lock ([atomicfs.LockFile])
// with [TryLock]: the lineage directory layout of package atomicfs. It creates missing directories. A
// DirLocker is safe for concurrent use; set DirMode before first use.
type DirLocker struct {
	// DirMode is the mode for the directories (root, root/key) DirLocker creates
	// when missing, before the umask. Zero means 0755.
	DirMode fs.FileMode

	root string
}

// NewDirLocker returns a DirLocker for lineage directories under root.
func NewDirLocker(root string) *DirLocker {
	return &DirLocker{root: root}
}

// Path returns the lock file used for key, or an error if key is not a single,
// plain path element.
func (d *DirLocker) Path(key string) (string, error) {
	if key == "" || key == "." || key == ".." || strings.ContainsAny(key, `/\`+"\x00") {
		return "", fmt.Errorf("lockfile: invalid lock key %q: must be one plain path element", key)
	}
	return filepath.Join(d.root, key, atomicfs.LockFile), nil
}

// TryLock takes the lock for key without waiting. Contention returns a
// [*HeldError] (errors.Is(err, ErrLocked)). ctx is only checked up front: the
// operation is local and does not block.
func (d *DirLocker) TryLock(ctx context.Context, key string) (unlock func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lockfile: lock %q: %w", key, err)
	}
	path, err := d.Path(key)
	if err != nil {
		return nil, err
	}
	mode := d.DirMode
	if mode == 0 {
		mode = 0o755
	}
	if err := os.MkdirAll(filepath.Dir(path), mode); err != nil {
		return nil, fmt.Errorf("lockfile: lock %q: %w", key, err)
	}
	l, err := TryLock(path)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}
