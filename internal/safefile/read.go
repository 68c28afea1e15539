package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxFileSize bounds every file atomicfs's Store reads (certificates, keys, the
// pending key): the largest real one is a few KiB.
const MaxFileSize = 1 << 20

// ErrNotRegular is matched (with [errors.Is]) by the error [ReadFile] returns
// for a path that names a FIFO, a device, a socket or a directory. Reading a
// FIFO would block for as long as nobody writes to it; a device may never end.
var ErrNotRegular = errors.New("atomicfs: not a regular file")

// ErrTooLarge is matched (with [errors.Is]) by the error [ReadFile] returns for
// a file larger than its limit. Nothing beyond the limit is read.
var ErrTooLarge = errors.New("atomicfs: file too large")

// ReadFile reads the regular file at path, which must not be a symbolic link
// and must hold at most limit bytes. It opens the file without following a
// symbolic link in its last component and without blocking (so a FIFO planted
// at path cannot hang the caller), refuses anything but a regular file with
// an error matching [ErrNotRegular], and reads through the limit, so a huge or
// sparse file costs no more than limit bytes: a larger one is refused with an
// error matching [ErrTooLarge]. A missing file gives an error matching
// [fs.ErrNotExist]. Errors name path.
func ReadFile(path string, limit int64) ([]byte, error) {
	return readFile(path, limit, openNoFollow, nil)
}

// ReadTrustedFile is [ReadFile] for a file a program trusts (an account key,
// a record that decides what to sign): besides ReadFile's checks, the open
// file must pass [CheckFile] with private, and a symbolic link at path is
// refused as insecure. Refusals match [ErrInsecure] (or [ErrNotRegular],
// [ErrTooLarge]); the file checked is the file read.
func ReadTrustedFile(path string, limit int64, private fs.FileMode) ([]byte, error) {
	return readFile(path, limit, openNoFollow, func(fi fs.FileInfo) error {
		return CheckFile(path, fi, private)
	})
}

// ReadFileFollow is [ReadFile] for a path whose last component may be a
// symbolic link (a configuration file managed elsewhere, a server's stable
// link): the link is followed, and everything else ReadFile checks still
// applies to the file it leads to.
func ReadFileFollow(path string, limit int64) ([]byte, error) {
	return readFile(path, limit, 0, nil)
}

func readFile(path string, limit int64, flags int, check func(fs.FileInfo) error) ([]byte, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if limit < 0 {
		limit = 0
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openNonBlock|flags, 0)
	if err != nil {
		if flags&openNoFollow != 0 && isSymlinkErr(err) {
			if check != nil {
				return nil, fmt.Errorf("%w: %s is a symbolic link; put the file itself there", ErrInsecure, path)
			}
			return nil, fmt.Errorf("atomicfs: read %s: a symbolic link; refusing to follow it: %w", path, err)
		}
		return nil, fmt.Errorf("atomicfs: read: %w", err) // *PathError names the file
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("atomicfs: read: %w", err)
	}
	if check != nil {
		if err := check(fi); err != nil {
			return nil, err
		}
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is a %s (mode %v); refusing to read it", ErrNotRegular, path, FileKind(fi.Mode()), fi.Mode())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %s holds %d bytes, more than the %d allowed", ErrTooLarge, path, fi.Size(), limit)
	}
	// The file may grow while it is read: the limit holds whatever fstat
	// said.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("atomicfs: read: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s holds more than the %d bytes allowed", ErrTooLarge, path, limit)
	}
	return data, nil
}
