package renew

import (
	"context"
	"time"
)

// Fleet is the state that several machines serving the same names share
// (fleet mode): the current generation of each lineage with its key, the
// order in progress and the cross-run backoff, behind a fleet-wide lock.
// Package fleet implements it on etcd (*fleet.Client); a Renewer uses it
// when Renewer.Fleet is set.
//
// The fleet is the source of truth; each machine's lineage directory stays
// its serving copy. A Renewer with a Fleet installs the fleet's current
// generation into the local lineage (the same atomicfs generation, swap and
// hook journal as a renewal), orders only under the fleet lock, journals
// the order in the fleet before finalize and publishes the certificate
// before installing it. Any error of View, Current or Lock other than one
// matching lockfile.ErrLocked means the fleet could not be consulted: the
// run ends Deferred and changes nothing locally; a Renewer never falls back
// to ordering on its own.
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
type Fleet interface {
	// View reads the fleet's record of each certificate's lineage, in one
	// linearizable read, in the order given. PEM fields (Cert, Chain, Key,
	// OrderKey) are left empty. A record that cannot be used is reported in
	// its entry's Err, not as View's error.
	View(ctx context.Context, certs []Certificate) ([]FleetRecord, error)
	// Current reads the fleet's current generation of c's lineage with its
	// certificate, chain and (unsealed) key. Generation is 0 when the fleet
	// has none. A generation that cannot be used is reported in Err, as in
	// View.
	Current(ctx context.Context, c Certificate) (FleetRecord, error)
	// Lock takes the fleet-wide lock of c's lineage without waiting. When
	// another node holds it the error matches lockfile.ErrLocked and, with
	// errors.As, is a *lockfile.HeldError naming the holder's node and
	// since when it holds the lock.
	Lock(ctx context.Context, c Certificate) (FleetLock, error)
	// Watch sends the name of each lineage whose fleet record changes
	// after it is called, until ctx ends. The channel is closed when ctx
	// ends or the watch fails; the caller then falls back to its timers and
	// may call Watch again.
	//
	// A name makes Serve run the lineage at once, so Watch sends only
	// changes another run could act on: a published generation, a change
	// of the order journal or of the backoff (by any node), and the
	// release of the lock by another node (a node that found it held may
	// try again). It sends neither the taking of a lock nor the release of
	// one this node held: a run ends by releasing its lock, and a release
	// sent back would run the lineage again at once, in a loop when the
	// run fails here. Nor does it send a new ARI window: the node that
	// fetched it acts on it itself, and the others read it with their next
	// run's View; waking every node for it would cost N runs per interval.
	Watch(ctx context.Context) <-chan string
}

// FleetLock is a held fleet lock on one lineage. Every write through it is
// fenced: it is applied only while the lock is still held at the instant
// of the write, so a holder paused past its lease (SIGSTOP, a frozen VM)
// writes nothing when it wakes; the write fails instead, and the caller
// stops working on the lineage.
type FleetLock interface {
	// Record re-reads the lineage's record under the lock, with the
	// journaled order's key (OrderKey) but without the generation's PEM.
	// A record that cannot be used is reported in Err, as in View.
	Record(ctx context.Context) (FleetRecord, error)
	// Journal records the order about to be finalized and its private key
	// (PEM; the implementation seals it) before finalize. When it fails the
	// order must not be finalized.
	Journal(ctx context.Context, order InFlight, keyPEM []byte) error
	// DropOrder forgets the journaled order (it is gone at the CA, or its
	// certificate is unusable).
	DropOrder(ctx context.Context) error
	// Publish makes g (Generation, Serial, validity, Cert, Chain, Key) the
	// fleet's current generation and, in the same atomic write, clears the
	// order journal and the backoff. g.Generation must be higher than the
	// fleet's: the fleet's generation never goes back.
	Publish(ctx context.Context, g FleetRecord) error
	// Fail records the fleet-wide backoff of the lineage from b's
	// Failures, RetryNotBefore, LastError and FailedConfig.
	Fail(ctx context.Context, b FleetRecord) error
	// PutARI records the CA's renewal window (ARI, RFC 9773) that this
	// node fetched: a's ARISerial, ARIStart, ARIEnd, ARIExplanationURL and
	// ARINextFetch. The other nodes adopt it instead of fetching their own
	// until ARINextFetch.
	PutARI(ctx context.Context, a FleetRecord) error
	// Unlock releases the lock.
	Unlock() error
}

// FleetRecord is what the fleet knows about one lineage.
type FleetRecord struct {
	// Name is the lineage name.
	Name string

	// Generation numbers the fleet's current generation (0: none yet).
	// It is the fleet's own number, not a local generation's.
	Generation uint64
	// Serial is the current certificate's serial number in hex.
	Serial string
	// Domains are the names the current certificate is for (canonical
	// form, sorted). They differ from a Certificate's Domains after its
	// names were changed: that generation is not installed but replaced,
	// as a local certificate for other names is (see Fleet).
	Domains []string
	// NotBefore and NotAfter are its validity.
	NotBefore, NotAfter time.Time
	// Publisher is the node that published it, and Published when.
	Publisher string
	Published time.Time
	// Cert, Chain and Key are the current generation's leaf, issuer chain
	// and private key in PEM: filled by Fleet.Current, given to
	// FleetLock.Publish.
	Cert, Chain, Key []byte

	// Order is the order in progress (journaled before finalize), nil if
	// none; OrderNode placed it. OrderKey is its private key in PEM, filled
	// by FleetLock.Record only.
	Order     *InFlight
	OrderNode string
	OrderKey  []byte

	// Failures counts the fleet's consecutive failed renewals;
	// RetryNotBefore is the fleet-wide gate they set; LastError is the last
	// one's error and FailedConfig the configuration fingerprint it failed
	// under (Certificate.Fingerprint).
	Failures       int
	RetryNotBefore time.Time
	LastError      string
	FailedConfig   string

	// ARISerial is the certificate (serial in hex) the fleet's renewal
	// window (ARI, RFC 9773) was fetched for; ARIStart, ARIEnd and
	// ARIExplanationURL are the window, and ARINextFetch is when it may be
	// fetched again. ARISerial is "" when no node recorded one.
	ARISerial         string
	ARIStart, ARIEnd  time.Time
	ARIExplanationURL string
	ARINextFetch      time.Time

	// Holder is the node holding the lineage's fleet lock ("" if none) and
	// HolderSince when it took it.
	Holder      string
	HolderSince time.Time

	// Err is set when a record of the lineage cannot be used (not
	// decodable, sealed with a key this node lacks, a certificate that is
	// not the one its record describes, too large): it names the record.
	// A generation or an order for other names than the configured ones is
	// not an error (see Domains and Order.Domains). Such a lineage is neither renewed nor
	// installed until the record is repaired; the local certificate stays.
	Err error
}
