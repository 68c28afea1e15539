// Package lockfile provides an exclusive, process-wide lock on a path, built on
// flock(2) through github.com/gofrs/flock.
//
// # Guarantee
//
// At most one [Lock] on a given lock file exists at a time, across processes and
// across independent opens within one process. The kernel releases the lock when
// its holder exits for any reason, including SIGKILL and the OOM killer, so there
// is never a stale lock to clean up and no lock ever expires by age. [TryLock]
// fails at once when the lock is held (like flock -n); [Acquire] waits until the
// lock is free or its context ends.
//
// After taking the lock the holder writes its PID and the time into the lock file.
// That text is advice for humans and for [HeldError] only: it is never used to
// decide who holds the lock, and it may be stale or missing (a holder killed
// before writing it, a reader racing the write).
//
// # Preconditions
//
//   - The lock file is never deleted, renamed over or replaced while anyone may
//     use it: flock(2) locks an inode, so a new file at the same path would let a
//     second holder in. This package never deletes it; nor must anything else.
//   - A local file system. On NFS, Linux emulates flock(2) with fcntl(2) byte-range
//     locks, which belong to the process: two opens in one process are then not
//     excluded from each other, and closing any descriptor of the file releases the
//     lock. SMB/CIFS locks are mandatory and block other readers.
//   - The directory holding the lock file is writable only by the user running the
//     program (a symbolic link at the lock path itself is refused, but an attacker
//     who can write the directory can still swap the file between runs).
//
// The lock file is created with mode 0600. Unix only: on other systems locking
// fails with an error wrapping [errors.ErrUnsupported].
//
// renew takes one lock file per lineage directory (atomicfs.LockFile, the
// lineage layout's name for it) with [TryLock]; a fleet's lock beyond it is
// package fleet's, and its contention is a [*HeldError] naming the node.
package lockfile
