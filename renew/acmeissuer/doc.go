// Package acmeissuer is renewkit's ACME issuer: an implementation of
// [renew.Issuer], [renew.Resumer] and [renew.RenewalInfoer] on lego v5's
// low-level [github.com/go-acme/lego/v5/acme/api] client.
//
// It owns the order loop instead of calling lego's Obtain, so that every wait
// honours ctx, every problem document the CA sends is seen and classified,
// and the order can be journaled before the point of no return.
//
// # One order, step by step
//
// [Issuer.Issue] runs these steps; each failure names the certificate, the
// step, and the CA's problem type and detail (see [Error]):
//
//  1. account: load or create the account (once per Issuer, see below);
//  2. new order: identifiers, profile, and "replaces" (RFC 9773) when the
//     request names a predecessor and the CA speaks ARI;
//  3. authorization: fetch each authorization of the order;
//  4. challenge: solve the pending authorizations in rounds in which no
//     two DNS-01 challenges share a record name (a wildcard and its base
//     name share one; a provider that declares itself Sequential gets its
//     interval between rounds). Each round: (a) lock its DNS-01 record
//     names (see DNS01.LockDir), (b) present each challenge (HTTP-01,
//     TLS-ALPN-01 or DNS-01), (c) wait for DNS propagation, (d) ask the CA
//     to validate each and poll its authorization (honouring Retry-After),
//     (e) clean up, (f) release the locks. A challenge the CA reports
//     "pending" with an error (it tried, failed and will not retry by
//     itself, as step-ca does) fails the attempt at once with the CA's
//     error rather than being re-triggered (RFC 8555 §8.2 leaves retrying
//     to the client; the caller's backoff does it);
//  5. ready: poll the order until it is ready;
//  6. journal: call the caller's journal (see [renew.Issuer]) with the order URL;
//     if it fails, stop: the order is never finalized;
//  7. finalize: send the CSR, signed with the caller's key — the point of no
//     return, after which the CA may issue; refused as orderNotReady because
//     another process finalized the order (a Resume while this one was
//     paused), go on to step 8 with the order as it is now;
//  8. order poll: poll the order until it is valid (honouring Retry-After,
//     riding out a few transient errors);
//  9. download: fetch the certificate and its chain.
//
// A DNS-01 provider's failure that is a *renew.LocalError (a zone it may
// not update), or that says its API refused the credentials (HTTP 401 or
// 403, an AWS authentication error code), is returned as a permanent error
// that matches renew.ErrLocal, naming the provider and DNS01.CredentialsFix;
// other provider failures are transient. [RFC2136] is a provider for
// dynamic updates that explains a nameserver's refusals that way.
//
// # Certificates validated differently
//
// One Issuer serves every certificate of a Renewer, each with its own
// challenges: Config.Routes maps a certificate's name to its [Challenges]
// (a webroot for one, DNS-01 for another), the Config's own HTTP01,
// TLSALPN01 and DNS01 being the default. The routes share the account, the
// API client, the listeners of one address and the record locks of one
// directory. A journaled order needs no challenge any more, so Resume
// finishes it whatever the route; an order placed anew after a crash takes
// its certificate's route like any other.
//
// # Configuration errors
//
// Errors from [New] wrap [renew.ErrConfig] and a *renew.ConfigError whose Field
// names the field at fault as a Go selector ("HTTP01.Webroot",
// `Routes["www"].DNS01.Provider`), for a program to map to its own keys.
//
// Challenge state (tokens, webroot files, DNS records) is cleaned up on every
// path; authorizations still pending after a failure are deactivated with a
// short context independent of the caller's (in the background, owned by the
// Issuer, when the caller's context was cancelled).
//
// # Preflight
//
// [Issuer.Preflight] (which the Renewer calls before every order) and
// [Config.Preflight] (for a dry run) check what can be checked without the
// CA: the account directory is writable, the webroot's challenge directory
// can be written the way lego writes it, the listen addresses can be bound
// (a busy port names its holder from /proc where it can), and a DNS
// provider with a Preflight(ctx) error method approves its set-up. Each
// problem is a *renew.LocalError naming the fix. Issuer.Preflight binds the
// challenge listeners for real and keeps them until Close, so nothing can
// take the port between the check and the challenge.
//
// # Crash safety
//
// The package writes two files, both in Config.AccountDir and both with
// the module's durable write (temp file, fsync, rename, fsync directory) at mode 0600:
// account.key (the ACME account's ECDSA P-256 key, PKCS#8 PEM) and
// account.json (the account URL and the directory it belongs to). The key is
// written before the account is registered; a process killed between the two
// leaves a key without a record, and the next run finds the account by its
// key instead of registering a second one. Concurrent first runs serialize on
// the lock file AccountDir/.lock.
//
// An account the CA answers accountDoesNotExist for (its database was reset)
// is registered again once per call, under the same lock: with the same key,
// or, if the CA refuses that key (badPublicKey), with a new one, written to
// account.key before it is registered while the refused one is kept as
// account.key.old. A process killed in between leaves account.json naming the
// forgotten account; the next run is told so again and registers the key on
// disk. See Issuer.Issue for an order that was already journaled.
//
// Machines that must finish each other's orders (a fleet: an order can be
// finalized and fetched only by the account that placed it) share one
// account key: [Config.AccountKey] returns this machine's (creating it
// like the first Issue would), [Config.AdoptAccountKey] replaces it by
// another machine's, keeping the previous key as account.key.old and
// removing account.json before writing the new key, so that a process
// killed in between never leaves a key with another key's account record;
// the next Issue finds the adopted key's account at the CA by its key.
//
// Switching from another ACME client keeps its account:
// [Config.AdoptAccount] takes the account's key (PEM, or certbot's JSON Web
// Key) and URL and writes them as account.key and account.json, so that the
// next order is the old account's (its rate limits, ARI's renewal
// exemption) without a request to the CA.
//
// # Trust in the account directory
//
// Whoever can write AccountDir can plant a key and act as the account
// (revoke its certificates). AccountDir must therefore pass the rules of a
// lineage directory (owned by the effective user, not
// writable by its group or others), checked by [New]; account.key and
// account.json must be regular files owned by that user and not writable by
// others, and account.key not readable by anyone else.
// They are opened without following a symbolic link and without blocking on
// a FIFO, and read through a 64 KiB limit. A violation is refused, never
// only warned about: the error matches atomicfs.ErrInsecure and
// renew.ErrLocal.
//
// # A CA that misbehaves
//
// Every response body is read through a limit (1 MiB; 64 KiB for an error
// status), so an endless or huge body costs bounded memory and fails the
// request with a permanent error saying so; the CA's text (problem details, error
// pages) is clipped in [Error] before it reaches a log or a state file.
//
// A process killed while it holds DNS-01 record-name locks loses them with
// its file descriptors (flock(2)); the record values it presented stay in
// the zone until a provider's CleanUp removes them (lego's providers
// remove only their own value, so a leftover never hides a later one from
// an appending provider, and a replacing provider overwrites it).
//
// An order killed after step 6 is finished by [Issuer.Resume] in a later
// process, which polls the journaled order and downloads its certificate
// without ordering again (invariant 4 of renewkit's promise). An order
// killed (or paused) before step 7 reached the CA is still ready; Resume
// finalizes it with the key the caller journaled (renew.InFlight.Key), so
// the renewal keeps one order, and a paused process's late finalize is
// refused by the CA (orderNotReady): its Issue then collects the same
// certificate. Without the key, Resume reports [renew.ErrOrderGone] and
// the caller orders anew, which wastes no issuance.
//
// # Preconditions
//
// AccountDir must be on a local file system where rename(2) is atomic and
// flock(2) is honoured. One AccountDir holds one account for one CA
// directory URL. lego keeps one process-wide logger; this package never
// replaces it unless the caller calls [SetLegoLogger].
package acmeissuer
