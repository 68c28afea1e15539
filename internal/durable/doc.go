// Package durable writes single files and creates directories so that a
// process killed at any instant, or a power loss, leaves either the old
// state or the new one, whole, and never a mix. It is the module's one
// owner of the temporary-file naming these writes rely on.
//
// # Crash safety
//
// [WriteFile] replaces one file: a temporary file beside the target, created
// with its final mode before the first byte is written, fsynced, renamed over
// the target, and the directory fsynced. Atomicity comes from rename(2);
// durability from the two fsyncs. It is built on github.com/google/renameio/v2
// and closes that package's gaps: renameio never fsyncs the directory, puts
// its temporary files in TMPDIR unless told otherwise, and keeps an existing
// file's looser mode. [WriteFileNoDirSync] leaves out the directory fsync, for
// a file whose replacement may be taken back by a power loss but must never be
// torn. [MkdirAll] creates directories durably (it fsyncs the parent of each).
// A killed write leaves at most a temporary file beside its target, named as
// [IsTemp] recognizes: atomicfs's Recover deletes those in a lineage
// directory, [RemoveTemps] those elsewhere.
//
// # Preconditions
//
// rename(2) must be atomic and fsync must reach stable storage: a local
// POSIX file system. NFS and other network file systems break both. Outside
// Unix every function returns an error matching errors.ErrUnsupported.
//
// The package is shared by atomicfs (which builds the lineage store on it),
// renew, acmeissuer, metrics and the CLI; it keeps no state, and everything
// in it is safe for concurrent use (concurrent writers of one path must be
// serialised by their caller).
package durable
