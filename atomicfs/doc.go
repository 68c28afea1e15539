// Package atomicfs writes certificate lineages so that a process killed
// at any instant, or a power loss, leaves either the old state or the new one,
// whole, and never a mix.
//
// # Single files
//
// A single file of a lineage (the pending key, renew's state.json) is
// replaced through a temporary file beside it, created with its final mode
// before the first byte is written, fsynced, renamed over the target, and
// the directory fsynced. Atomicity comes from rename(2); durability from the
// two fsyncs. These writes are the module's internal/durable package, shared
// with its other packages and built on github.com/google/renameio/v2,
// closing that package's gaps: renameio never fsyncs the directory, puts its
// temporary files in TMPDIR unless told otherwise, and keeps an existing
// file's looser mode.
//
// The durability claims are tested under a simulated power loss
// (internal/lossyfs: every write that was not made durable is dropped, or
// kept in any subset): see the tests named TestPowerLoss*.
//
// # The lineage store
//
// A [Store] is one certificate lineage on disk:
//
//	NAME/
//	  .lock                          LockFile: package lockfile's; never touched here
//	  state.json                     StateFile: package renew's, replaced atomically
//	  generations/
//	    000041/                      complete and immutable once renamed into place
//	      cert.pem chain.pem fullchain.pem privkey.pem combined.pem
//	    .000042.tmp-*/               being written; Recover deletes it
//	  current -> generations/000041  the one switch, replaced by renaming a temp symlink
//	  cert.pem -> current/cert.pem   stable links made once; servers read these
//	  chain.pem fullchain.pem privkey.pem combined.pem   (likewise)
//	  pending.key                    a key whose certificate is not installed yet
//
// Every name in this layout is defined once, in this package ([CertFile] …
// [CombinedFile], [StateFile], [LockFile], [CurrentLink]), and
// [NeedsRecovery] checks a lineage directory for what a killed run may have
// left there (and for modes Open refuses) without opening a Store.
//
// [Store.Install] writes a new generation in a temporary directory and renames it
// into place; it does not change what is served. [Store.Activate] switches
// current to a complete generation with one rename. A reader that opens a stable
// link therefore sees the old generation or the new one. A reader that opens two
// files can straddle a switch; combined.pem (key, certificate and chain in one
// file) exists for readers that must never see a mismatched pair.
//
// After a crash, [Store.Recover] deletes what the killed run left (temporary
// generation directories, temporary symlinks, renameio temporary files), recreates
// missing stable links, and reports complete generations newer than current, which
// the caller may roll forward to with Activate. A generation another user could
// have written (its directory or a file not owned by the effective user, or
// writable by group or others) is reported apart, in [RecoverReport.Untrusted],
// never as one to roll forward. [Store.Prune] bounds the number of generations
// kept. Generation numbers end at 999,999,999; larger names are not
// generations.
//
// # Reading
//
// The Store reads what it wrote back (the pending key, generation files)
// without following a final symbolic link,
// without blocking on a FIFO, regular files only, through a size limit.
//
// # Preconditions
//
//   - rename(2) is atomic and fsync(2) is honoured: a local POSIX file system
//     (ext4, xfs, btrfs, zfs). NFS with several clients breaks atomicity; a
//     file system or disk that ignores fsync breaks durability.
//   - The lineage directory is on one file system (no bind mounts inside it), and
//     only its owner can write it and its parents. Open enforces the lineage
//     directory and generations/ part, like sshd's StrictModes, and refuses
//     either when it is a symbolic link: see [ErrInsecure].
//   - One process at a time modifies a lineage: the caller holds the lineage lock
//     (package lockfile). Within the process a Store serialises its own mutating
//     methods. Readers (web servers, Current, Read) need no lock.
//   - Unix only: elsewhere the functions return an error wrapping
//     [errors.ErrUnsupported].
package atomicfs
