// Package hooks runs deploy hooks after a certificate is installed, and keeps
// the pending-hook journal that makes them survive a crash.
//
// A [Hook] is anything with a stable [Hook.Name] and a [Hook.Run] method that
// receives an [Event] describing the installed generation. [Command] runs a
// program without a shell, [Reload] asks systemd to reload a unit, and [Func]
// wraps Go code.
//
// # Crash-safety contract
//
// Hooks run at least once per installed generation, never exactly once. A
// process killed after a hook succeeded but before that success reached the
// disk runs the hook again on its next start; every hook must therefore be
// idempotent (a reload is). The guarantee holds when the caller follows this
// sequence for each new generation N of a lineage, holding the lineage lock:
//
//  1. [Journal.Record] the event of N with the configured hooks.
//  2. Persist the journal durably (write a temp file, fsync, rename, fsync
//     the directory) before going on.
//  3. Switch the served files to N.
//  4. [Journal.Replay]: it runs each pending hook and persists the journal
//     after each success (through the persist callback).
//
// and calls Replay again at the start of every later run, before anything
// else. The crash windows then are:
//
//   - before (2) is durable: the journal does not mention N, and N is not
//     served either, so there is nothing to replay;
//   - between (2) and (3): N is pending but not served yet; the next run rolls
//     N forward (or not) and replays its hooks, which at worst reload an
//     unchanged certificate;
//   - during (4): every hook whose success was persisted is done; the one
//     that was running, or had succeeded but was not yet persisted, runs
//     again.
//
// A hook that fails stays pending, with its attempt count and last error, and
// is retried by every later Replay; it never blocks the install of the
// certificate itself. A pending hook that is no longer configured (the
// configuration changed, or a broken hook was fixed under another name) is
// replaced by the configured hooks for its generation, with a warning. Only
// one thing ends a pending hook other than success, logged: the journal holds
// more than 16 generations and the oldest entry is dropped
// (invariant: nothing grows without bound).
//
// The journal is a plain JSON value with no I/O of its own: the caller
// embeds it in its state file and persists it with an atomic write. This
// package does no storage I/O; it takes only the lineage's file names from
// package atomicfs, for the RENEWKIT_* variables.
//
// # Commands
//
// A [CommandHook] executes argv directly (no shell: ";", "$(...)" and
// wildcards reach the program literally), in its own process group. When its
// timeout (2 minutes unless changed with [CommandHook.WithTimeout]) expires
// or the context ends, the whole group is killed with SIGKILL, so a hook's background children die
// with it, also when the command itself has already exited. Its environment is minimal, so that secrets in this process's
// environment do not leak into hooks: PATH (a standard one when unset), HOME,
// LANG, LC_ALL and TZ from this process when set, what
// [CommandHook.WithInheritEnv] and [CommandHook.WithEnv] add, and last the
// variables of [Event.Env] (certbot's RENEWED_LINEAGE and RENEWED_DOMAINS,
// and RENEWKIT_*). Standard output and standard
// error are captured together, keeping only the last 64 KiB, and reported in errors and logs: hooks must not print secrets.
//
// Process groups need a Unix system. Elsewhere a CommandHook refuses to run
// and returns an error matching [errors.ErrUnsupported], rather than run a
// command whose children a timeout could not kill.
package hooks
