package atomicfs

import "syscall"

// NeedsRecovery reports whether the lineage directory dir needs a run that
// opens it with [Open] and calls [Store.Recover]: it holds something a killed run may have
// left (a hidden entry other than [LockFile], or the pending key), or
// it is not a directory Open would accept (a symbolic link, writable by
// group or others, or owned by another user than euid, the caller's
// effective user id, which a caller checking many lineages asks for once),
// so that Open reports it. It reads names only, with raw system calls: it
// is meant for a hot path run once per lineage on every timer tick
// (os.Open registers every descriptor with the runtime's poller, five
// extra system calls per open).
func NeedsRecovery(dir string, euid int) (bool, error) {
	// O_NOFOLLOW: a lineage directory that is a symbolic link fails here,
	// and Open refuses it.
	fd, err := openNoPoll(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW)
	if err != nil {
		return false, err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return false, err
	}
	if st.Mode&0o022 != 0 || int(st.Uid) != euid {
		return true, nil
	}
	var buf [4096]byte
	var names []string
	for {
		n, err := syscall.Getdents(fd, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return false, err
		}
		if n <= 0 {
			return false, nil
		}
		names = names[:0]
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
		for _, name := range names {
			if leftover(name) {
				return true, nil
			}
		}
	}
}

// openNoPoll opens path with open(2), retrying on EINTR.
func openNoPoll(path string, flags int) (int, error) {
	for {
		fd, err := syscall.Open(path, flags, 0)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}
