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
//     (e) clean up, (f) release the locks;
//  5. ready: poll the order until it is ready;
//  6. journal: call the caller's [renew.OrderJournal] with the order URL;
//     if it fails, stop: the order is never finalized;
//  7. finalize: send the CSR, signed with the caller's key — the point of no
//     return, after which the CA may issue;
//  8. order poll: poll the order until it is valid (honouring Retry-After,
//     riding out a few transient errors);
//  9. download: fetch the certificate and its chain.
//
// A DNS-01 provider's failure that is a *renew.LocalError (refused
// credentials, a zone it may not update) is returned as a permanent error
// that still matches renew.ErrLocal; other provider failures are transient.
//
// Challenge state (tokens, webroot files, DNS records) is cleaned up on every
// path; authorizations still pending after a failure are deactivated with a
// short context independent of the caller's (in the background, owned by the
// Issuer, when the caller's context was cancelled).
//
// # Crash safety
//
// The package writes two files, both in Config.AccountDir and both with
// atomicfs.WriteFile (temp file, fsync, rename, fsync directory) at mode 0600:
// account.key (the ACME account's ECDSA P-256 key, PKCS#8 PEM) and
// account.json (the account URL and the directory it belongs to). The key is
// written before the account is registered; a process killed between the two
// leaves a key without a record, and the next run finds the account by its
// key instead of registering a second one. Concurrent first runs serialize on
// the lock file AccountDir/.lock.
//
// A process killed while it holds DNS-01 record-name locks loses them with
// its file descriptors (flock(2)); the record values it presented stay in
// the zone until a provider's CleanUp removes them (lego's providers
// remove only their own value, so a leftover never hides a later one from
// an appending provider, and a replacing provider overwrites it).
//
// An order killed after step 6 is finished by [Issuer.Resume] in a later
// process, which polls the journaled order and downloads its certificate
// without ordering again (invariant 4 of renewkit's promise). An order killed
// before step 7 reached the CA cannot be resumed (the key that signs the CSR
// is the caller's); Resume then reports [renew.ErrOrderGone] and the caller
// orders anew, which wastes no issuance.
//
// # Preconditions
//
// AccountDir must be on a local file system where rename(2) is atomic and
// flock(2) is honoured. One AccountDir holds one account for one CA
// directory URL. lego keeps one process-wide logger; this package never
// replaces it unless the caller calls [SetLegoLogger].
package acmeissuer
