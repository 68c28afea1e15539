package lockfile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/renewkit/renewkit/atomicfs"
)

// Locker hands out exclusive locks by key, one key per lineage. It is what the
// renewal code consumes, so that a distributed lock can replace the one of
// [NewDirLocker].
//
// Implementations must be safe for concurrent use, must not wait for a held lock
// (contention returns an error matching [ErrLocked] at once), and must honour ctx
// in any network round trip. unlock is idempotent. Whoever gets the lock must
// re-check the state it guards: another holder may have done the work meanwhile.
type Locker interface {
	TryLock(ctx context.Context, key string) (unlock func() error, err error)
}

var _ Locker = (*dirLocker)(nil)

// dirLocker is the Locker of NewDirLocker.
type dirLocker struct {
	root string
}

// NewDirLocker returns the [Locker] for lineage directories under root: it
// locks root/<key>/.lock ([atomicfs.LockFile]) with [TryLock], creating
// missing directories (mode 0755 before the umask). It is safe for
// concurrent use.
func NewDirLocker(root string) Locker {
	return &dirLocker{root: root}
}

// Path returns the lock file used for key, or an error if key is not a single,
// plain path element.
func (d *dirLocker) Path(key string) (string, error) {
	if key == "" || key == "." || key == ".." || strings.ContainsAny(key, `/\`+"\x00") {
		return "", fmt.Errorf("lockfile: invalid lock key %q: must be one plain path element", key)
	}
	return filepath.Join(d.root, key, atomicfs.LockFile), nil
}

// TryLock takes the lock for key without waiting. Contention returns a
// [*HeldError] (errors.Is(err, ErrLocked)). ctx is only checked up front: the
// operation is local and does not block.
func (d *dirLocker) TryLock(ctx context.Context, key string) (unlock func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lockfile: lock %q: %w", key, err)
	}
	path, err := d.Path(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lockfile: lock %q: %w", key, err)
	}
	l, err := TryLock(path)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}
