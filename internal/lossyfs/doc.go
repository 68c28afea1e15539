// Package lossyfs is a file system for tests that simulates a power cut. It
// is a FUSE loopback file system (github.com/hanwen/go-fuse/v2) in front of
// a backing directory that records every mutating operation in order, with
// its data, and can then produce "the disk after a power cut at point P"
// for any P: a fresh directory holding what a disk could hold if the
// machine had lost power after the first P operations.
//
// A killed process's writes survive in the page cache, so a kill test
// cannot tell a missing fsync from a correct one. This package can: a
// write that was never made durable is gone after a simulated cut.
//
// # Use
//
//	fsys, err := lossyfs.Mount(backing, mountpoint)  // the mount is empty or holds backing's files
//	...                                              // prepare; then, as if sync(1) had run:
//	fsys.Checkpoint()
//	...                                              // run the program under test on mountpoint
//	seq := fsys.Seq()                                // when something outside happens (a server got a request)
//	rec := fsys.Recording()                          // the operations since the checkpoint
//	after := rec.CutOf(seq)                          // cuts from here on come after that event
//	fsys.Unmount()
//	for p := 0; p <= rec.Len(); p++ {
//		for _, d := range rec.Disks(p, 3, true, rng, "data") {
//			d.Materialize(dir)                       // then check dir, run the program on it
//		}
//	}
//
// # Persistence model
//
// The operations recorded are: create, mkdir, symlink, link (each makes a
// directory entry for an inode), unlink, rmdir (each removes one), rename
// (moves one entry, replacing whatever the new name held), write (bytes at
// an offset of an inode), truncate (including open with O_TRUNC), chmod,
// and fsync or fdatasync of a file or a directory. Inodes are tracked by
// identity, not by name, so an inode keeps its data when it is renamed,
// when it loses its last name while open, and when its directory is
// renamed.
//
// An operation is durable at a cut P when an fsync that makes it durable
// happened before P:
//
//   - file data (write, truncate) is durable after fsync or fdatasync of
//     that file; sync_file_range promises nothing (FUSE does not even see
//     it);
//   - a mode change (chmod) is durable after fsync (not fdatasync) of that
//     file or directory;
//   - a directory entry change (create, mkdir, symlink, link, unlink,
//     rmdir) is durable after fsync of the directory that holds the entry;
//     a rename is durable after fsync of the directory it moves the entry
//     into (within one directory, that directory), and then as a whole:
//     the old name is gone and the new one is there. A symlink's target is
//     part of its creation (it lives in the inode written with the entry).
//
// At a cut, every durable operation is kept. Of the operations that are not
// durable, [Recording.Disks] keeps none ("the cache is lost"), all ("the
// cache was written back just in time": the state a killed process leaves),
// each one alone, all but each one, each prefix in program order (an
// in-order write-back cut off midway), and some random subsets: real file
// systems write back some unsynced work before the cut, in any order. The
// families other than the random subsets are systematic: what they catch
// does not depend on a seed.
// [Recording.Disk] keeps any subset a test chooses; [Recording.Without]
// leaves operations out of the recording (an fsync left out is the run as
// it would have been without that call); [Recording.Volatile] reads a file
// as the program saw it at a cut (a trace, a log: what had happened). The kept operations are replayed on the
// state at the checkpoint, in their original order; an operation whose
// precondition a dropped one removed is applied as far as it can be (a
// write to an inode whose entry was dropped changes that inode, which is
// then unreachable; a rename whose source entry was dropped still puts the
// inode under the new name, as a file system that wrote back the new
// directory block but not the old one would show).
//
// # What the model does not cover
//
//   - Torn writes: one write(2) is kept whole or not at all; a real disk can
//     persist part of it (a torn sector). Data is written by renewkit only to
//     files that are not yet published, so this matters less than it seems,
//     but it is not simulated.
//   - File-system bugs, lying disks (a cache that ignores flushes), and
//     corruption of data that was durable.
//   - Anything weaker than the rules above that a file system might still
//     do, such as ext4's implicit ordering (data=ordered, or its
//     replace-via-rename heuristic) that makes many missing fsyncs harmless
//     in practice: the model is the POSIX minimum, stricter than ext4.
//   - Ownership (chown), timestamps and extended attributes are not
//     recorded; the materialised files belong to the test process. xattrs,
//     mknod, O_TMPFILE, fallocate, copy_file_range and RENAME_EXCHANGE are
//     refused with an error rather than recorded wrongly.
//   - fsync is recorded, not forwarded to the backing directory (which is
//     scratch space); the mount is for tests only.
//   - flock(2) locks are handled by the kernel for the mount (FUSE's local
//     emulation), which is enough for processes on one machine.
//
// # Preconditions
//
// Linux, /dev/fuse, and either root (go-fuse then calls mount(2) itself) or
// fusermount3 (Debian's fuse3). [Available] says whether a mount can be
// tried.
package lossyfs
