package renew

import (
	"context"
	"errors"
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
// before installing it (the package documentation's "Fleet mode" gives the
// rules, by step). Any error of View, Current, Lock or FleetLock.Record
// other than one matching lockfile.ErrLocked or ErrFleetRecord means the
// fleet could not be consulted: the run ends Deferred and changes nothing
// locally; a Renewer never falls back to ordering on its own.
//
// Each call takes or returns the record it needs: View a FleetView per
// certificate, Current a FleetBundle, FleetLock.Journal a FleetOrder,
// Publish a FleetBundle, Fail a FleetBackoff, PutARI a FleetARI. An
// implementation is safe for concurrent use; internal/fleettest's
// conformance suite checks one (the etcd one of package fleet and the
// in-memory fake of renew's tests both pass it).
type Fleet interface {
	// View reads the fleet's record of each certificate's lineage, in one
	// linearizable read, in the order given (step 0). A record that cannot
	// be used is reported in its entry's Err, not as View's error.
	View(ctx context.Context, certs []Certificate) ([]FleetView, error)
	// Current reads the fleet's current generation of c's lineage with its
	// certificate, chain and (unsealed) key (step 5). Number is 0 when the
	// fleet has none. A generation that cannot be used is an error
	// matching ErrFleetRecord that names the record.
	Current(ctx context.Context, c Certificate) (FleetBundle, error)
	// Lock takes the fleet-wide lock of c's lineage without waiting (step
	// 7). When another node holds it the error matches lockfile.ErrLocked
	// and, with errors.As, is a *lockfile.HeldError naming the holder's
	// node and since when it holds the lock.
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

// ErrFleetRecord is matched (with errors.Is) by the error of Fleet.Current
// for a fleet record that cannot be used (not decodable, sealed with a key
// this node lacks, a certificate that is not the one its record describes,
// too large); FleetView.Err reports the same for View and FleetLock.Record.
// A run stops on it naming the record, with the local certificate intact,
// and is not deferred: asking again gives the same answer.
var ErrFleetRecord = errors.New("renew: fleet record unusable")

// FleetLock is a held fleet lock on one lineage. Every write through it is
// fenced: it is applied only while the lock is still held at the instant
// of the write, so a holder paused past its lease (SIGSTOP, a frozen VM)
// writes nothing when it wakes; the write fails instead, and the caller
// stops working on the lineage. A FleetLock is safe for concurrent use.
type FleetLock interface {
	// Record re-reads the lineage's record under the lock, with the
	// journaled order's key (Order.Key). A record that cannot be used is
	// reported in Err, as in View.
	Record(ctx context.Context) (FleetView, error)
	// Journal records the order about to be finalized (o.OrderURL,
	// Domains, Created) and its private key (o.Key, PEM; the
	// implementation seals it) before finalize; o.Node is ignored (it is
	// this node). When it fails the order must not be finalized.
	Journal(ctx context.Context, o FleetOrder) error
	// DropOrder forgets the journaled order (it is gone at the CA, or its
	// certificate is unusable).
	DropOrder(ctx context.Context) error
	// Publish makes b the fleet's current generation and, in the same
	// atomic write, clears the order journal and the backoff. b.Number
	// must be higher than the fleet's: the fleet's generation never goes
	// back. Serial, Domains and validity must be the leaf's (b.Cert);
	// Publisher and Published default to this node and now.
	Publish(ctx context.Context, b FleetBundle) error
	// Fail records the fleet-wide backoff of the lineage (a failed
	// attempt, counted).
	Fail(ctx context.Context, b FleetBackoff) error
	// PutARI records the CA's renewal window (ARI, RFC 9773) that this
	// node fetched. The other nodes adopt it instead of fetching their own
	// until w.NextFetch.
	PutARI(ctx context.Context, w FleetARI) error
	// Unlock releases the lock.
	Unlock() error
}

// FleetView is what the fleet knows about one lineage, as View and
// FleetLock.Record read it.
type FleetView struct {
	// Name is the lineage name.
	Name string
	// Current is the fleet's current generation, without its PEM
	// (Current.Number is 0 when the fleet has none).
	Current FleetGeneration
	// Order is the order in progress (journaled before finalize), nil if
	// none. Its Key is filled by FleetLock.Record only.
	Order *FleetOrder
	// Backoff is the fleet's cross-run backoff (zero: none).
	Backoff FleetBackoff
	// ARI is the renewal window a node recorded (ARI.Serial "" if none).
	ARI FleetARI
	// Holder is the node holding the lineage's fleet lock ("" if none) and
	// HolderSince when it took it.
	Holder      string
	HolderSince time.Time
	// Err is set when a record of the lineage cannot be used: it names the
	// record. A generation or an order for other names than the configured
	// ones is not an error (see FleetGeneration.Domains and
	// FleetOrder.Domains). Such a lineage is neither renewed nor installed
	// until the record is repaired; the local certificate stays.
	Err error
}

// FleetGeneration describes a fleet generation.
type FleetGeneration struct {
	// Number is the fleet's own number of the generation (0: none yet),
	// not a local generation's.
	Number uint64
	// Serial is the certificate's serial number in hex.
	Serial string
	// Domains are the names the certificate is for (canonical form,
	// sorted). They differ from a Certificate's Domains after its names
	// were changed: that generation is not installed but replaced, as a
	// local certificate for other names is (see the package
	// documentation's "Fleet mode").
	Domains []string
	// NotBefore and NotAfter are its validity.
	NotBefore, NotAfter time.Time
	// Publisher is the node that published it, and Published when.
	Publisher string
	Published time.Time
}

// FleetBundle is a fleet generation with its PEM: what Fleet.Current
// returns and FleetLock.Publish writes.
type FleetBundle struct {
	FleetGeneration
	// Cert, Chain and Key are the leaf, its issuer chain and its private
	// key in PEM (the implementation seals the key).
	Cert, Chain, Key []byte
}

// FleetOrder is an order journaled in the fleet before its finalize.
type FleetOrder struct {
	// OrderURL, Domains and Created are the order's (see InFlight).
	OrderURL string
	Domains  []string
	Created  time.Time
	// Node is the node that journaled it.
	Node string
	// Key is the order's private key in PEM: given to FleetLock.Journal,
	// returned by FleetLock.Record, empty in View's records.
	Key []byte
}

// FleetBackoff is the fleet's cross-run backoff of a lineage.
type FleetBackoff struct {
	// Failures counts the fleet's consecutive failed renewals;
	// RetryNotBefore is the fleet-wide gate they set; LastError is the
	// last one's error and FailedConfig the configuration fingerprint it
	// failed under (Certificate.Fingerprint).
	Failures       int
	RetryNotBefore time.Time
	LastError      string
	FailedConfig   string
}

// FleetARI is a renewal window (ARI, RFC 9773) a node fetched and shared.
type FleetARI struct {
	// Serial is the certificate (serial in hex) the window was fetched
	// for ("" when no node recorded one).
	Serial string
	// Start, End and ExplanationURL are the window.
	Start, End     time.Time
	ExplanationURL string
	// NextFetch is when it may be fetched again.
	NextFetch time.Time
}
