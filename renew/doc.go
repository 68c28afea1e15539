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
//     key before finalize (one file, NAME/pending.key: the key followed by
//     the order record), and the next run downloads and installs its
//     certificate instead of ordering again; an order killed after its
//     journal but before its finalize reached the CA is finalized by the
//     next run with the journaled key (through the Resumer) rather than
//     replaced, so it stays the renewal's only order;
//   - temporary files of the killed run are removed by the next run that
//     looks at the lineage, and old generations are pruned to Keep;
//   - a generation the killed run wrote but did not make current is rolled
//     forward only when state.json (which names it before the swap) or the
//     order journal (which holds its key) vouches for it, and after the
//     checks a fresh certificate gets: another user's planted generation,
//     however self-consistent, is never served.
//
// # Never silent
//
// Every run ends with an outcome, and failures are counted across runs:
//
//   - a failure to write the new generation (a full disk) is a failed
//     attempt like a CA error: counted, recorded with its error and a
//     not-before, the order journal kept so that the next run installs the
//     certificate without ordering again;
//   - a CA's Retry-After is honoured up to the cross-run limit
//     (backoff.RetryAfterLimit: a day, and never into the last part of the
//     certificate's lifetime) and a longer one is clamped, with a warning;
//   - a lineage lock held longer than any run can take (LockBound, derived
//     from the retry policy and the hook timeouts, or LockStuckAfter) ends
//     LockStuck, a failure naming the holder's PID and age: a stopped or
//     frozen holder keeps its flock, and Locked would say "fine" forever.
//
// Files read from a lineage (state.json, pending.key, the generation files)
// are opened without following a final symbolic link and without blocking,
// must be regular files and are read through a size limit
// (internal/safefile): a FIFO or a huge sparse file is an error, not a hang
// or a gigabyte of memory. state.json is written with mode 0600: it keeps
// the (redacted, bounded) output of failing hooks.
//
// A run is one numbered sequence of steps, in single-node and fleet mode
// alike, documented on the unexported run method: (0) read the fleet
// (fleet mode), (1) fast path (no lock, no write), (2) lock, (3) load
// state, (4) recover, (5) sync a newer generation from elsewhere (fleet
// mode), (6) decide, (7) gate (cross-run backoff, preflight, and in fleet
// mode the fleet lock), (8) obtain (journal before finalize), (9) verify,
// (10) publish (fleet mode), (11) write the generation, (12) prune, (13)
// journal the hooks, (14) swap, (15) run the hooks, (16) done. The crash
// suite's crash points are named after them (renew.run:N).
//
// # Taking over another client's certificates
//
// Renewer.Adopt makes a certificate another client issued (certbot's
// live/NAME/ files, lego's certificates/) a lineage's first generation
// without an order: verified like an issued certificate, then installed by
// the same steps 9 to 14 as a renewal (hook journal included), so a process
// killed during it is recovered like a killed renewal, and adopting the
// same certificate again is harmless. acmeissuer.Config.AdoptAccount brings
// the client's ACME account along. The CLI's -import does both from
// certbot's or lego's directory.
//
// # Fleet mode
//
// Several machines serving the same names share one certificate and key
// through a Fleet (Renewer.Fleet; package fleet implements it on etcd).
// The fleet holds each lineage's current generation (certificate, chain,
// sealed key), the order in progress and the cross-run backoff, behind a
// fleet-wide lock whose writes are fenced. Each machine's lineage directory
// stays its serving copy, with the same layout, swap and hook journal: every
// node installs every generation and reloads its own server at least once
// per generation. Fleet mode is a strategy inside the one step sequence
// above; its rules, by step:
//
//   - (0) the fleet's record of every lineage is read in one View before
//     any runs; a no-op run adds nothing else (no lock, no write). View
//     failing defers every lineage; a record that cannot be used fails its
//     lineage, naming it.
//   - (1) the fast path also needs the fleet's record to name the installed
//     certificate and journal no order.
//   - (4) an order journaled in pending.key (before fleet mode, or with
//     -no-fleet) is finished as in single-node mode and installed here
//     only; a generation holding the fleet's current certificate is rolled
//     forward (the fleet vouches for it).
//   - (5) the fleet's current generation, when it is not the one installed
//     here, is read (Fleet.Current), verified as an issued certificate and
//     installed (Recovered). Not when it has expired, is for other names,
//     or the installed certificate outlives it while it is due or is a
//     later fleet generation (the fleet went back: restored from a backup);
//     that one is adopted in step 7.
//   - (6) a node whose ARI window is stale takes the fleet's when that one
//     is for the installed certificate and fresh (another node fetched it
//     this ARIInterval), without asking the CA; a window it fetches is
//     recorded in the fleet at the end of the run through the run's one
//     fleet lock, when it can be taken at once (held elsewhere or
//     unreachable: the window stays this node's, and the run goes on, never
//     Deferred for it). Each node picks its own instant in the window. A
//     forced run (Certificate.Force) that installed the fleet's generation
//     in step 5 takes it as its renewal: forcing every node orders once.
//   - (7) the fleet's backoff is the gate (one node's failure makes every
//     node wait); the preflight runs before the fleet lock (a node that
//     cannot order holds no other node back); then the fleet lock (another
//     holder: Locked, naming its node), the record re-read under it: a
//     generation another node published meanwhile is installed (step 5),
//     not ordered again; an order journaled there by a node that died is
//     finished instead of ordering again, one still ready (the journaling
//     node died, or is paused past its lease, before its finalize) with the
//     journaled key, so that the paused node's late finalize is refused by
//     the CA and whatever it fetches is the same certificate. A fleet
//     without a generation, or with an older one than a node's valid,
//     not-due certificate, takes that one as its next generation without
//     an order (adoption: a fleet forms from nodes that already have one).
//   - (8) the order and its key are journaled in the fleet before finalize;
//     a failure to journal defers the run, never finalized.
//   - (10) the certificate is published as the fleet's next generation
//     before it is installed here: a publish refused because the lock was
//     lost (a holder paused past its lease) installs nothing, and the next
//     holder finishes the journaled order.
//   - (11) a failure to install the fleet's generation (a full disk) is
//     this node's, never written to the fleet's backoff; a failed attempt
//     under the fleet lock continues the fleet's count and is written to
//     its backoff.
//   - (16) the fleet lock is released before the lineage lock.
//
// Killed at any crash point of the fleet path (renew.run:8:journaled,
// renew.run:8, renew.run:10), another node finishes the renewal without a
// second issuance, and the killed node installs the fleet's generation on
// its next run.
//
// When a lineage's names are changed (Certificate.Domains), the fleet's
// generation for the old names is treated like a local certificate for
// other names: it is not installed, the lineage is due on a node whose
// installed certificate is for the old names, and that node orders for the
// new names under the fleet lock and publishes over it (the generation
// number still grows); an order journaled for the old names is dropped
// under the lock and a new one placed. The names must be changed on every
// node: while some nodes still have the old names, each side serves its
// own certificate, never installs the other's, never republishes its own
// over the other's (no adoption over other names) and orders when its own
// is due, publishing over the other side's: at most one order per side
// and renewal period, never a loop.
//
// Deferred means the fleet could not be consulted (etcd unreachable, no
// quorum, a timeout): nothing was ordered, installed or changed locally,
// nothing is counted against the CA's backoff, and the run is retried a
// minute later. A node never falls back to ordering on its own: N nodes
// ordering at once would exceed the CA's duplicate-certificate limits and
// serve N different keys. A fleet record that cannot be used (undecodable,
// sealed with another key, a certificate its record does not describe)
// fails the run naming the record, with the local certificate intact,
// until it is repaired. A generation or order for other names (the
// lineage's names were changed) is not such a record: it is replaced.
//
// When etcd stays unreachable as the certificate nears expiry, nodes keep
// serving what they have installed and renewal waits for etcd: every run
// ends Deferred (a failure the CLI exits non-zero on and the metrics
// count). If the outage outlasts the certificate's remaining margin, the
// CLI's off-by-default -no-fleet flag runs one single-node renewal on one
// machine (Renewer.Fleet nil). Once etcd is back, that machine publishes
// its certificate to the fleet if it outlives the fleet's generation and
// that one is due, and the other nodes install it rather than order again;
// otherwise it installs the fleet's generation like any node. In Serve,
// nodes also watch the fleet (Fleet.Watch) and run a lineage as soon as
// its record changes, so every node installs a published generation within
// moments.
//
// # Whose fault
//
// A failure caused on this machine (a webroot the user cannot write, a
// busy port, a missing hook program, a lineage directory owned by another
// user) is a *LocalError (errors.Is ErrLocal) whose Fix says what to do.
// The preflight step finds most of them before any order: the Issuer's
// Preflight (Preflighter) and each hook's. A local failure fails the run at
// once and is never retried within it. Found before any order reached the
// CA, it is not counted against the CA's cross-run backoff (Failures,
// RetryNotBefore): the next run's preflight fails again before ordering, so
// retrying cannot hammer the CA. Found after an order was placed
// (LocalError.Ordered: credentials a DNS provider refuses while the
// challenges are presented, which no preflight could check), it is counted
// like any failure, so that it does not cost an order every few minutes.
// Failures at the CA back off; the backoff holds back only the
// configuration that failed (Certificate.Fingerprint).
//
// # Stopping
//
// Ending the context given to Run (or Serve) stops each run in progress
// before its next irreversible step. A local step under way (writing a
// generation, making it current, saving state) is not cut short; talking
// to the CA is, and an order the CA may already be issuing stays journaled
// for the next run; no new order is placed and no new generation started. Deploy hooks are
// killed at once, or, with Renewer.HookGrace, may finish for that long,
// so that a certificate already made current gets its reload. A hook that
// did not finish stays pending. Renewer.ServeUpdates also stops between
// rounds, without interrupting one, when its updates channel is closed;
// that is how a program swaps its configuration.
//
// # Durability and cost
//
// A renewal performs 12 fsyncs, 13 when deploy hooks ran. Each is justified by the power-loss suite
// (crashtest.TestPowerLoss with RENEWKIT_POWERLOSS_FULL=1 or
// RENEWKIT_POWERLOSS_FSYNCS=1): a run without that one fsync leaves a disk,
// after some power cut, that breaks a promise; the failure it shows is
// given here.
//
//   - 2 before finalize: pending.key (the new key and the order URL, one
//     file) and the lineage directory. After finalize the CA may issue; the
//     journal must already be on disk. Without either, a cut after finalize
//     loses the journal and the next run orders again (a wasted issuance).
//   - 7 to write the generation: its five files (their writeback started
//     together, then each fsynced), the temporary directory before it is
//     renamed (so a "complete" generation cannot lose files), generations/
//     after the rename (so current never points at a vanished directory).
//     Without any one, a cut leaves a generation with an empty or missing
//     file, or none where the journal says one was installed, and the next
//     run serves the old certificate although the CA issued the new one.
//   - 2 for state.json with the hook journal (file, directory) before the
//     swap. Without the file's, a cut leaves state.json torn; without the
//     directory's, current can be durable while the journal is not, and the
//     new generation's hooks never run.
//   - 1 of the lineage directory after the swap (Activate's last step).
//     Without it, a power cut right after the run reported success brings
//     back the old certificate: the result was not durable.
//   - 1 when deploy hooks ran: the last save of state.json (their
//     successes) fsyncs the file but not the directory. A cut may take the
//     save back (the hooks then run again, which at-least-once delivery
//     allows) but must not tear it; the directory fsync it used to have
//     protected nothing (the suite found no cut that fails without it).
//
// Pruning adds none: the audit found that its fsync of generations/ after
// renaming the victims aside protected nothing (a victim a power loss
// brings back, half deleted, is deleted by the next prune), and it is
// gone. A first issuance adds the directories it creates
// (internal/durable.MkdirAll fsyncs the parent of each; a new lineage directory is
// fsynced so that Install's generation is durable when it returns) and one
// of the lineage directory once its stable links exist, before the first
// switch. A few of these are redundant in a particular run — two fsyncs of
// one directory with nothing between them that depends on the first, such
// as the journal's directory fsync and that of the new stable links on a
// first issuance — and the audit lists them per scenario; each of the 13
// is needed in a forced renewal with a deploy hook.
//
// A run over a lineage that is not due takes no lock and writes nothing:
// it reads state.json, the directory's names and mode, and stats cert.pem
// and privkey.pem through the stable links (eleven system calls; their inode,
// size and time prove that current still points at the generation
// state.json describes, undamaged). It
// makes an unauthenticated ARI request, and then takes the lock to record
// the window, when the CA offers ARI and the last window is older than
// ARIInterval.
//
// # Preconditions
//
// Root must be on a local file system where rename(2) is atomic and
// flock(2) is honoured; NFS with several clients breaks both. Lineage
// directories and their generations/ must be owned by the running user, not
// writable by group or others, and not symbolic links (atomicfs refuses
// them otherwise; Root itself may be a link). Hooks must be idempotent.
//
// # Issuers
//
// The Renewer obtains certificates through the small Issuer interface; the
// ACME implementation on lego v5 is in the acmeissuer subpackage. An Issuer
// that also implements Resumer makes invariant 4 (no wasted issuance) hold;
// one that implements RenewalInfoer adds ARI (RFC 9773).
package renew
