package atomicfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/safefile"
)

// SavePendingKey stores the private key of an order that is being finalized, so
// that a run killed before the certificate is installed can install it later
// instead of ordering again. It is written atomically and durably (temporary
// file beside it, fsync, rename, fsync of the lineage directory), with the key
// mode and group: the file has its final mode before its first byte.
func (s *Store) SavePendingKey(keyPEM []byte) error {
	if len(keyPEM) == 0 {
		return fmt.Errorf("atomicfs: save pending key in %s: empty key", s.dir)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return durable.Write(filepath.Join(s.dir, pendingKeyName), keyPEM, durable.Options{Perm: s.keyMode, GID: s.gid, Crash: s.crashAt})
}

// PendingKey returns the pending key, read like the generation files (no
// symbolic link, no FIFO, at most 1 MiB).
// With none, the error wraps [fs.ErrNotExist].
func (s *Store) PendingKey() ([]byte, error) {
	path := filepath.Join(s.dir, pendingKeyName)
	b, err := safefile.ReadFile(path, safefile.MaxFileSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("atomicfs: %s: no pending key: %w", path, err)
		}
		return nil, fmt.Errorf("atomicfs: read pending key: %w", err)
	}
	return b, nil
}

// RemovePendingKey deletes the pending key. It is idempotent: no key is not an
// error. The removal is not fsynced by itself: it becomes durable with the
// next fsync of the lineage directory (Activate, SavePendingKey, or a
// durable write of state.json), so a caller must tolerate the key coming back after a power loss
// before then (package renew does: state.json names the order it installed).
func (s *Store) RemovePendingKey() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.dir, pendingKeyName)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("atomicfs: remove pending key: %w", err)
	}
	return nil
}
