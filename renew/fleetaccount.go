package renew

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/renewkit/renewkit/atomicfs"
)

// The fleet's ACME account. An order can be fetched and finalized only by
// the account that placed it, so the node that takes a journaled order over
// (its holder killed or paused) must order with the same account as the
// node that placed it: every node of a fleet uses one account key per CA,
// shared through the fleet. When the Issuer implements SharedAccountIssuer
// (acmeissuer's *Issuer does) and the Fleet has a ShareAccount method of
// the form below (fleet's *Client has), a Renewer with a Fleet does, before its first run
// reads the fleet (step 0) and until it has succeeded once:
//
//  1. read this node's account key, creating it when there is none
//     (no CA contacted), and the highest epoch of the fleet's account
//     this node accepted;
//  2. share the key: the first node's key becomes the fleet's, and every
//     other node gets that one back, with its epoch; a fleet account
//     older than the epoch this node accepted is refused (a replayed
//     record);
//  3. adopt the fleet's key when it differs (the local one is kept, see
//     the store's AdoptAccountKey; the account is found at the CA by its
//     key at the first order), unless this node still has orders of its
//     own journaled (a pending key, from a single-node run killed after
//     finalize): they belong to its own account, so adoption waits until a
//     run has finished them;
//  4. remember the fleet account's epoch (after adopting: a crash between
//     the two adopts again, which changes nothing).
//
// Until that has succeeded, a run does not proceed with a possibly
// different account: the fleet not answering ends every certificate
// Deferred (as when the fleet's records cannot be read); an unusable
// account record or local account key fails each certificate naming it.

// AccountStore is one CA's ACME account key on this node, as the fleet's
// shared account needs it. Its methods are safe for concurrent use and
// honour ctx; the key bytes are secret.
type AccountStore interface {
	// AccountKey returns the account key (PEM), creating it if missing.
	AccountKey(ctx context.Context) ([]byte, error)
	// AdoptAccountKey makes keyPEM the account key, keeping the previous
	// one; adopted is false when it already was.
	AdoptAccountKey(ctx context.Context, keyPEM []byte) (adopted bool, err error)
	// FleetEpoch returns the highest epoch of the fleet's account this
	// node accepted (0: none), and SetFleetEpoch durably raises it (a
	// lower epoch changes nothing).
	FleetEpoch(ctx context.Context) (uint64, error)
	SetFleetEpoch(ctx context.Context, epoch uint64) error
}

// SharedAccountIssuer is implemented by an Issuer whose orders use one ACME
// account per CA (acmeissuer's *Issuer): in fleet mode the Renewer shares
// that account through the fleet (see above).
type SharedAccountIssuer interface {
	Issuer
	// SharedAccount returns the CA's directory URL (which account the
	// fleet shares) and the account's key store.
	SharedAccount() (directoryURL string, store AccountStore)
}

// accountSharer is implemented by a Fleet that shares ACME account keys
// (fleet's *Client): ShareAccount stores keyPEM as the fleet's account key
// for directoryURL with an epoch above known unless the fleet has one, and
// returns the fleet's key and epoch. A fleet account older than known, or
// a record that cannot be used, is an error matching ErrFleetRecord and
// naming the record; the fleet not answering is any other error (the run
// is deferred).
type accountSharer interface {
	ShareAccount(ctx context.Context, directoryURL string, keyPEM []byte, known uint64) (fleetKeyPEM []byte, epoch uint64, err error)
}

// errAdoptionPostponed is shareAccount's answer when this node keeps its
// own account key for now (step 3): the run goes on, and the next one
// shares again.
var errAdoptionPostponed = errors.New("adopting the fleet's ACME account key postponed")

// fleetAccount is the Renewer's state of the shared account: whether it
// was shared (and adopted) once.
type fleetAccount struct {
	mu     sync.Mutex
	shared bool
}

// ensureAccount runs steps 1 to 4 once per Renewer (again after a
// failure or a postponement). A nil error lets the run go on.
func (r *Renewer) ensureAccount(ctx context.Context, certs []Certificate) error {
	iss, ok := r.Issuer.(SharedAccountIssuer)
	sharer, ok2 := r.Fleet.(accountSharer)
	if !ok || !ok2 {
		return nil
	}
	r.account.mu.Lock()
	defer r.account.mu.Unlock()
	if r.account.shared {
		return nil
	}
	err := r.shareAccount(ctx, iss, sharer, certs)
	if errors.Is(err, errAdoptionPostponed) {
		return nil
	}
	if err == nil {
		r.account.shared = true
	}
	return err
}

// shareAccount is steps 1 to 4. A failure of the local account store is
// a *LocalError.
func (r *Renewer) shareAccount(ctx context.Context, iss SharedAccountIssuer, sharer accountSharer, certs []Certificate) error {
	dir, store := iss.SharedAccount()
	localErr := func(err error) error {
		return &LocalError{What: "ACME account key for " + dir, Err: err,
			Fix: "check the account directory: it and its key must be owned by the user this program runs as, not writable by others (key mode 0600)"}
	}
	// (1)
	known, err := store.FleetEpoch(ctx)
	if err != nil {
		return localErr(err)
	}
	local, err := store.AccountKey(ctx)
	if err != nil {
		return localErr(err)
	}
	defer clear(local)
	// (2)
	shared, epoch, err := sharer.ShareAccount(ctx, dir, local, known)
	if err != nil {
		return fmt.Errorf("the fleet's ACME account for %s: %w", dir, err)
	}
	defer clear(shared)
	if !bytes.Equal(shared, local) {
		// (3)
		if names := r.pendingOrders(certs); len(names) > 0 {
			r.logger().Info(fmt.Sprintf("keeping this node's ACME account key for CA %s until its journaled orders are finished (they belong to it); the fleet's is adopted by a later run", dir),
				"lineages", names)
			return errAdoptionPostponed
		}
		adopted, err := store.AdoptAccountKey(ctx, shared)
		if err != nil {
			return localErr(err)
		}
		if adopted {
			r.logger().Info(fmt.Sprintf("adopted the fleet's ACME account key for CA %s (epoch %d); the previous key is kept", dir, epoch))
		}
	}
	// (4)
	if epoch > known {
		if err := store.SetFleetEpoch(ctx, epoch); err != nil {
			return localErr(err)
		}
	}
	return nil
}

// pendingOrders returns the names of the certificates with an order
// journaled on this node (atomicfs's pending key).
func (r *Renewer) pendingOrders(certs []Certificate) []string {
	var names []string
	for _, c := range certs {
		if c.validate() != nil {
			continue
		}
		s, err := atomicfs.Open(filepath.Join(r.Root, c.Name), r.Modes)
		if err != nil {
			continue
		}
		if _, err := s.PendingKey(); err == nil {
			names = append(names, c.Name)
		}
	}
	return names
}
