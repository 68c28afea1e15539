// Package fleet is the building block of fleet mode: several machines serving
// the same names share one certificate through etcd. It provides a
// lease-backed lock per lineage, fenced writes of the
// shared records (current generation, order journal, cross-run backoff, ARI
// state), AEAD sealing of private keys, a range read of many lineages' state
// and a watch. It is built on go.etcd.io/etcd/client/v3 and its concurrency
// package (sessions: a lease and its keep-alive); there is no consensus code
// here, and no lock file on a shared disk.
//
// # Use with renew
//
// A [*Client] implements renew.Fleet: set it as renew.Renewer.Fleet and the
// Renewer takes its fleet path (renew's package doc): one [Client.View] (one
// range read, [Client.ReadStates]) for all certificates of a run,
// [Client.Current] ([Client.ReadGeneration]) to install the fleet's
// generation, [Client.Lock] ([Client.TryLockFenced]) before ordering, and
// under that lock Record, Journal ([Client.PutJournal]), DropOrder
// ([Client.ClearJournal]), Publish ([Client.PublishGeneration]) and Fail
// ([Client.PutBackoff]), every one of them fenced. [Client.Watch] sends the
// names of changed lineages to a serving Renewer, which runs them at once.
// Errors keep their meaning through renew: etcd not answering matches
// [ErrUnavailable] (the run is deferred), a lost lock [ErrFenced], a bad
// record [ErrRecord] naming its key (in renew.FleetView.Err; from Current,
// also matching renew.ErrFleetRecord), a held lock
// [lockfile.ErrLocked] with a *lockfile.HeldError naming the holder node and
// the etcd lock key.
//
// The ARI record ([Client.PutARI], [State.ARI]) is the renewal window one
// node fetched for the current certificate: per interval one node asks the
// CA, the others read the window from etcd.
//
// # The lock: one renewer per lineage, fleet-wide
//
// [Client.TryLockFenced] creates the key PREFIX/v1/state/NAME/lock with the
// client's lease in one transaction, or reports the holder (a
// *lockfile.HeldError naming the node, matching [lockfile.ErrLocked])
// without waiting. The lease is kept alive by the
// client while it runs; when the holder dies (SIGKILL, OOM, power), the lease
// and with it the lock expire after [Config.LockTTL]: the distributed
// equivalent of flock(2) being released by the kernel, with the TTL as the
// price. Closing the client revokes the lease at once.
//
// # Fencing: a paused holder writes nothing
//
// A lease can expire while its holder still thinks it holds the lock: the
// process was stopped (SIGSTOP, a long GC pause, a frozen VM) or cut off from
// etcd for longer than the TTL, and another node has taken the lock since.
// Every write this package makes for a lock holder is therefore one etcd
// transaction whose first condition is that the lock key still exists with
// the create revision it had when this holder took it ([Lock.Revision], the
// fencing token: it only grows). The condition is checked by etcd at the
// instant of the write, not by the holder beforehand, so a holder that wakes
// after its lease expired writes nothing, whatever it believes: the write
// fails with [ErrFenced] and the new holder's state stands.
// [Client.PublishGeneration] also refuses a generation number that is not
// higher than the fleet's ([ErrNotNewer]), so the current generation never
// goes back.
//
// # Persistence model
//
// etcd is the fleet's source of truth: a write acknowledged by etcd is
// committed by a quorum of members and survives the loss of a minority. Each
// write of this package is one transaction, atomic: a reader sees all of a
// publish (meta record, bundle, journal and backoff cleared) or none of it.
// Reads are linearizable (they reflect every write acknowledged before them).
// A write whose outcome is unknown (timeout) is reported as [ErrUnavailable];
// the caller re-reads after retaking the lock, like after a crash. A node's
// lineage directory stays its serving copy: a node never serves from etcd
// directly.
//
// Keys under [Config.Prefix]+"v1/" (the layout is versioned with the records):
//
//	state/NAME/lock     the lock, with the holder's node name and start time
//	state/NAME/meta     the current generation's number, serial, names, validity, publisher
//	state/NAME/journal  the order in progress: order URL, names, creation, node, sealed key
//	state/NAME/backoff  failures, last failure, not-before, last error (bounded), failed configuration
//	state/NAME/ari      the ARI window of the current certificate
//	bundle/NAME         the current generation: certificate, chain, sealed key, meta
//	account/HASH        the fleet's ACME account key for one CA (HASH: of its directory URL), sealed
//
// Records are JSON with a version field, refused when larger than
// [MaxStateSize] or [MaxBundleSize], decoded strictly (unknown fields and
// trailing data are errors) and checked for their lineage. A record that
// fails any check is a [*RecordError] naming its etcd key ([ErrRecord]);
// [Client.ReadStates] confines it to its lineage's [State.Err]. A meta
// record, bundle or order journal for other names than the lineage's is
// not bad: the lineage's names were changed since it was written, and it is
// reported with its names for the reader to replace (renew orders for the
// new names and publishes over it). Writes (PublishGeneration, PutJournal)
// are for the lineage's names only.
//
// # One ACME account for the fleet
//
// An ACME order can be fetched and finalized only by the account that
// placed it, so a node that takes over an order journaled by another node
// must use the same account. [Client.ShareAccountKey] stores the first
// node's account key for a CA under account/HASH (sealed like every
// private key, bound to its etcd key and the CA's directory URL) with a
// transaction that creates it only if absent, and returns the fleet's key
// to every later caller, which adopts it (renew/acmeissuer's
// Config.AdoptAccountKey). The key stays under the same prefix: the RBAC
// role below needs no change.
//
// # Sealing
//
// Private keys (a generation's and an order's) are sealed with AES-256-GCM
// under a 32-byte key every node reads from [Config.SealKeyFile] before they
// are sent to etcd; see [Sealer] for the choice, the key file format and the
// binding of each sealed value to its etcd key, lineage and field. Rotation:
// (1) give every node the new key as SealKeyFile and the old one in
// OldSealKeyFiles, (2) let the fleet publish a new generation (it is sealed
// with the new key; an order journal is short-lived), (3) remove the old key
// from OldSealKeyFiles. A value sealed with a key a node does not have is a
// [*RecordError] naming the etcd key and the key id, never key material.
//
// # etcd unavailable
//
// Every call is bounded by [Config.RequestTimeout] and asks for a leader, so
// a member cut off from its quorum answers at once instead of hanging. When
// etcd cannot answer (no endpoint reachable, no quorum, timeout) the error
// matches [ErrUnavailable]; the caller's own cancellation is its context's
// error instead. The caller keeps serving what it has and defers renewal; it
// must never fall back to ordering on its own.
//
// # Supported etcd servers
//
// The client is go.etcd.io/etcd/client/v3 v3.7.3. Tested against the embedded
// v3.7.3 server (single member and a 3-member cluster) and the etcd 3.4.23
// binary of Debian 12 (package etcd-server; TestEtcdBinary). The calls used
// (KV range/put/delete, transactions comparing create and mod revisions,
// leases with keep-alive, watch with a start revision) exist since etcd 3.0;
// servers from 3.4 on are supported, 3.5 or newer recommended (3.4 is out of
// upstream support).
//
// # TLS and RBAC
//
// Use https endpoints with [Config.CAFile], and client certificates
// ([Config.CertFile], [Config.KeyFile]) with etcd's --client-cert-auth: etcd
// then takes the certificate's common name as the user. A node needs one role
// with read and write permission on the key prefix PREFIX+"v1/" and nothing
// else (leases need no permission):
//
//	etcdctl role add renewkit-node
//	etcdctl role grant-permission renewkit-node --prefix=true readwrite /renewkit/v1/
//	etcdctl user add renewkit-node --no-password
//	etcdctl user grant-role renewkit-node renewkit-node
//
// (for Prefix "/renewkit/", the default). Nodes write only under that prefix;
// a read-only status tool needs only "read" on it.
//
// # Concurrency
//
// A [Client] and a [Lock] are safe for concurrent use. One Client uses one
// lease for all its locks: when it expires, every lock of that Client is lost
// together, and the next TryLock grants a new lease.
package fleet
