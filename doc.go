// Package renewkit is a Go library for ACME (RFC 8555) certificate renewal
// that stays correct when the renewing process is killed at any instant.
//
// Fleets renew short-lived certificates often, and processes die at random:
// OOM killers, a cron script's pkill -f, container restarts, watchdogs, node
// drains. renewkit is built so that a renewal killed midway never leaves a
// web server with a broken certificate, a lost reload or a wasted issuance.
//
// # The promise
//
// For one certificate (a "lineage"), whatever instant the renewing process
// dies at:
//
//  1. Never a mixed or partial pair. A server reads one complete generation
//     (certificate, chain and key from the same issuance) or the previous
//     one: never half a file, never a key that does not match, never nothing
//     where there was a certificate.
//  2. Never a lost reload. A certificate that got installed has its deploy
//     hooks run at least once; if the process died between the install and
//     the hook, the next run replays it. Hooks must therefore be idempotent.
//  3. Never two writers. At most one process renews a lineage at a time; the
//     lock is released by the kernel when its holder dies, so there is no
//     stale lock to clean up.
//  4. Never a wasted issuance. A certificate the CA issued but that was not
//     installed when the process died is installed by the next run, not
//     ordered again.
//  5. Never a silent failure, never a hammered CA. Every run ends with an
//     outcome per certificate, a log record and metrics; failures back off
//     within a run and across runs, and the CA's Retry-After is honoured.
//  6. Idempotent. Running again right after a success does nothing; running
//     again after a crash finishes or rolls back what the crash interrupted.
//  7. Secrets stay secret. A private key file has its final restrictive mode
//     before its first byte is written; keys never appear in logs or errors.
//  8. Nothing grows without bound. Temporary files of a killed run are removed
//     by the next run; old generations are pruned to a configured count.
//
// # How the packages compose
//
// The building blocks know nothing of ACME and nothing of each other:
//
//   - [github.com/renewkit/renewkit/lockfile]: an exclusive per-lineage lock
//     on flock(2), released by the kernel when the holder dies.
//   - [github.com/renewkit/renewkit/atomicfs]: atomic, durable file writes and
//     the lineage store: immutable generation directories switched by one
//     atomic symlink swap, with recovery of whatever a killed run left.
//   - [github.com/renewkit/renewkit/expiry]: reading certificates and deciding
//     when to renew (fraction of lifetime, fixed threshold, ARI windows).
//   - [github.com/renewkit/renewkit/backoff]: retry within a run, error
//     classes (transient, permanent, rate-limited) and cross-run backoff.
//   - [github.com/renewkit/renewkit/hooks]: deploy hooks (argv commands,
//     systemd reloads, Go funcs) and the journal that makes them survive
//     crashes.
//
// [github.com/renewkit/renewkit/renew] ties them together: its Renewer runs
// each lineage through lock, recover, decide, gate, obtain, verify, write,
// journal, swap, hooks and prune, through an Issuer interface whose ACME
// implementation (on lego v5) lives in renew/acmeissuer. Programs that use
// them test their set-up against [github.com/renewkit/renewkit/renew/acmetest],
// an ACME CA that runs inside the test process.
//
// # Preconditions
//
// The storage root must be on a local file system where rename(2) is atomic
// and flock(2) is honoured (ext4, xfs, btrfs, tmpfs, overlayfs). NFS with
// several clients breaks both; renewkit does not detect it.
package renewkit
