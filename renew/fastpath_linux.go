package renew

import (
	"errors"
	"io/fs"
	"syscall"
)

// The no-op path runs once per lineage on every timer tick, so it reads
// with raw system calls: os.Open registers every descriptor with the
// runtime's poller (five extra system calls per open, all failing for
// regular files and directories), which is most of the cost at 10,000
// lineages.

// readSmall reads the file at path, which is expected to be small, into
// buf (growing it if needed).
func readSmall(path string, buf []byte) ([]byte, error) {
	// O_NOFOLLOW and O_NONBLOCK: a link or a FIFO planted at path must
	// not be followed or hang the run; fstat sends anything but a regular
	// file, and a file whose mode is not stateMode, to the full run,
	// which reports or fixes it.
	fd, err := openRetry(path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Mode&0o777 != stateMode {
		return nil, errNotPlain
	}
	n := 0
	for {
		if n == len(buf) {
			if len(buf) >= maxStateSize+1 {
				return buf[:n], nil // parseState reports the size
			}
			buf = append(buf, make([]byte, len(buf)+4096)...)
		}
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
		if n < len(buf) {
			// A short read of a regular file is its end: save the read
			// that would return 0.
			return buf[:n], nil
		}
	}
}

// errNotPlain sends the fast path to the full run.
var errNotPlain = errors.New("not a regular file with the state's mode")

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := syscall.Open(path, flags, 0)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

// inode returns the inode number of the file fi describes.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// ownerOf returns the uid owning fi's file.
func ownerOf(fi fs.FileInfo) (int, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), true
	}
	return 0, false
}

// canWrite asks access(2) whether the effective user may create entries in
// the directory path.
func canWrite(path string) error {
	const atEACCESS = 0x200
	if err := syscall.Faccessat(atFDCWD, path, 0x2|0x1, atEACCESS); err != nil { // W_OK|X_OK
		return &fs.PathError{Op: "access", Path: path, Err: err}
	}
	return nil
}

const atFDCWD = -0x64
