package acmeissuer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/renew"
)

// fleetEpochFile in Config.AccountDir remembers the highest epoch of a
// fleet's shared account this node accepted (package fleet): a record
// older than that is a replay and is refused.
const fleetEpochFile = "fleet.epoch"

var _ renew.SharedAccountIssuer = (*Issuer)(nil)

// SharedAccount implements renew.SharedAccountIssuer: in fleet mode a
// renew.Renewer shares this Issuer's account (its key and the fleet's
// epoch, in Config.AccountDir) through the fleet, so that every node
// orders with one account (renew's fleet account documentation). An
// adoption of the fleet's key takes effect at this Issuer's next order:
// the account loaded with the previous key is dropped.
func (i *Issuer) SharedAccount() (string, renew.AccountStore) {
	return i.cfg.DirectoryURL, issuerAccount{i}
}

// issuerAccount is the account store of an Issuer.
type issuerAccount struct{ i *Issuer }

func (a issuerAccount) AccountKey(ctx context.Context) ([]byte, error) {
	return a.i.cfg.AccountKey(ctx)
}

func (a issuerAccount) AdoptAccountKey(ctx context.Context, keyPEM []byte) (bool, error) {
	if err := a.i.acquireInit(ctx); err != nil {
		return false, err
	}
	defer a.i.releaseInit()
	adopted, err := a.i.cfg.AdoptAccountKey(ctx, keyPEM)
	if err == nil {
		// The account loaded (if any) may be the previous key's, adopted by
		// another store of the same directory: found again at the next
		// order, for the key now in the directory.
		a.i.core = nil
	}
	return adopted, err
}

func (a issuerAccount) FleetEpoch(ctx context.Context) (uint64, error) {
	return a.i.cfg.FleetEpoch(ctx)
}

func (a issuerAccount) SetFleetEpoch(ctx context.Context, epoch uint64) error {
	return a.i.cfg.SetFleetEpoch(ctx, epoch)
}

// FleetEpoch returns the highest epoch of a fleet's shared account for
// this CA that this node accepted (AccountDir/fleet.epoch), 0 when none:
// see renew's fleet account documentation. A file that is not one decimal
// number is an error naming it.
func (c *Config) FleetEpoch(ctx context.Context) (uint64, error) {
	i, err := c.accountIssuer()
	if err != nil {
		return 0, err
	}
	_, unlock, err := i.lockAccount(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	return readFleetEpoch(filepath.Join(i.cfg.AccountDir, fleetEpochFile))
}

func readFleetEpoch(path string) (uint64, error) {
	data, err := readAccountFile(path, 0o077)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, permanent("", "account", fmt.Errorf("fleet account epoch: %w", err))
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, permanent("", "account", fmt.Errorf("fleet account epoch %s: not a number: %w", path, err))
	}
	return n, nil
}

// SetFleetEpoch durably raises the epoch FleetEpoch returns to epoch (a
// lower or equal one changes nothing). Recovery after a genuine restore of
// the fleet's etcd from a backup older than the last change of account:
// remove AccountDir/fleet.epoch on every node (their keys are the fleet's
// already) and run them.
func (c *Config) SetFleetEpoch(ctx context.Context, epoch uint64) error {
	i, err := c.accountIssuer()
	if err != nil {
		return err
	}
	_, unlock, err := i.lockAccount(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(i.cfg.AccountDir, fleetEpochFile)
	cur, err := readFleetEpoch(path)
	if err != nil || epoch <= cur {
		return err
	}
	if err := durable.WriteFile(path, []byte(strconv.FormatUint(epoch, 10)+"\n"), 0o600); err != nil {
		return permanent("", "account", fmt.Errorf("write %s: %w", path, err))
	}
	return nil
}
