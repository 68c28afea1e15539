// Package renew is renewkit's renewal engine: the Renewer runs each
// certificate ("lineage") through a crash-safe state machine, and
// CertSource serves the result to an in-process TLS server with hot reload.
//
// # Crash-safety contract
//
// Whatever instant the process running a Renewer is killed at (SIGKILL, the
// OOM killer, a power cut on a journaling file system), for each lineage:
//
//   - the stable links Root/NAME/{cert,chain,fullchain,privkey,combined}.pem
//     resolve to one complete generation, the old or the new, never a mix;
//   - a generation that became current has its hooks run at least once: the
//     hook journal in state.json is written before the swap, and the next
//     run replays whatever is still pending;
//   - at most one process works on a lineage (an flock on Root/NAME/.lock,
//     released by the kernel when its holder dies);
//   - an order past its point of no return (finalize) is journaled with its
//     key before finalize, and the next run downloads and installs its
//     certificate instead of ordering again;
//   - temporary files of the killed run are removed by the next run that
//     looks at the lineage, and old generations are pruned to Keep.
//
// The state machine is documented step by step on the unexported run
// method; its steps, in short: fast path (no lock, no write), lock, load
// state, recover, decide, gate, obtain (journal before finalize), verify,
// write the generation, journal the hooks, swap, run the hooks, prune,
// done. Each step is a named crash point of the crash suite.
//
// # Durability and cost
//
// A renewal performs these fsyncs: the pending key (file + directory) and
// state.json with the order journal (file + directory) before finalize;
// the five generation files, the generation directory and generations/
// when writing; state.json with the hook journal; the lineage directory
// after the swap; state.json after each successful hook; and state.json at
// the end. A run over a lineage that is not due takes no lock and writes
// nothing: it reads state.json, lists the lineage directory's names and
// reads the current link.
//
// # Preconditions
//
// Root must be on a local file system where rename(2) is atomic and
// flock(2) is honoured; NFS with several clients breaks both. Lineage
// directories must be owned by the running user and not writable by group
// or others (atomicfs refuses them otherwise). Hooks must be idempotent.
//
// # Issuers
//
// The Renewer obtains certificates through the small Issuer interface; the
// ACME implementation on lego v5 is in the acmeissuer subpackage. An Issuer
// that also implements Resumer makes invariant 4 (no wasted issuance) hold;
// one that implements RenewalInfoer adds ARI (RFC 9773).
package renew
