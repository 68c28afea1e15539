package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// The fleet's ACME account. An order can be fetched and finalized only by
// the account that placed it, so the node that takes a journaled order
// over (its holder killed or paused) must order with the same account as
// the node that placed it: every node of a fleet uses one account key per
// CA, shared through etcd (fleet.Client.ShareAccountKey). Before a run
// orders anything, accountFleet.View:
//
//  1. reads this node's account key, creating it when there is none
//     (acmeissuer.Config.AccountKey; no CA contacted);
//  2. shares it: the first node's key becomes the fleet's, and every other
//     node gets that one back;
//  3. adopts the fleet's key when it differs (acmeissuer.Config.
//     AdoptAccountKey: the local one is kept as account.key.old, and the
//     account is found at the CA by its key at the first order), unless
//     this node still has orders of its own journaled (pending.key): they
//     belong to its own account, so adoption waits until a run has
//     finished them.
//
// Until that has succeeded once, the run does not proceed with a possibly
// different account: etcd not answering ends every certificate Deferred
// (as when the fleet's records cannot be read), an unusable account record
// or local account key fails each certificate naming it.

// accountConfig is the acmeissuer.Config of cfg's ACME account, for the
// account functions (no challenge is needed for them).
func accountConfig(cfg *config, log *slog.Logger) acmeissuer.Config {
	return acmeissuer.Config{DirectoryURL: cfg.DirectoryURL, AccountDir: cfg.AccountDir, Logger: log.With("component", "acme")}
}

// oldAccountKeyPath is where AdoptAccountKey keeps the previous key.
func oldAccountKeyPath(cfg *config) string {
	return filepath.Join(cfg.AccountDir, "account.key.old")
}

// shareAccount is steps 1 to 3 above. A failure on this machine (the
// account directory or key) is a *renew.LocalError; the fleet's are
// fleet's (ErrUnavailable, a *fleet.RecordError).
func shareAccount(ctx context.Context, c *fleet.Client, cfg *config, log *slog.Logger) error {
	ac := accountConfig(cfg, log)
	// (1)
	local, err := ac.AccountKey(ctx)
	if err != nil {
		return accountLocalError(cfg, err)
	}
	defer clear(local)
	// (2)
	shared, err := c.ShareAccountKey(ctx, cfg.DirectoryURL, local)
	if err != nil {
		return err
	}
	defer clear(shared)
	if bytes.Equal(shared, local) {
		return nil
	}
	// (3) Not while this node has orders of its own journaled (pending.key,
	// from a single-node or -no-fleet run killed after finalize): they
	// belong to the local account, and resuming them with the fleet's
	// would fail and order again. The run finishes them first; a later
	// run adopts.
	if names := pendingOrders(cfg); len(names) > 0 {
		log.Info(fmt.Sprintf("keeping this node's ACME account key for CA %s until its journaled orders are finished (they belong to it); the fleet's is adopted by a later run", cfg.DirectoryURL),
			"lineages", names)
		return errAdoptionPostponed
	}
	adopted, err := ac.AdoptAccountKey(ctx, shared)
	if err != nil {
		return accountLocalError(cfg, err)
	}
	if adopted {
		log.Info(fmt.Sprintf("adopted the fleet's ACME account key for CA %s; the previous key is kept as %s", cfg.DirectoryURL, oldAccountKeyPath(cfg)),
			"account_dir", cfg.AccountDir)
	}
	return nil
}

// errAdoptionPostponed is shareAccount's answer when this node keeps its
// own account key for now (see step 3): the run goes on, and the next one
// shares again.
var errAdoptionPostponed = errors.New("adopting the fleet's ACME account key postponed")

// pendingOrders returns the lineages of cfg with an order journaled on
// this node (atomicfs's pending key).
func pendingOrders(cfg *config) []string {
	var names []string
	for _, c := range cfg.Certificates {
		s, err := atomicfs.Open(filepath.Join(cfg.Root, c.Name), atomicfs.Modes{})
		if err != nil {
			continue
		}
		if _, err := s.PendingKey(); err == nil {
			names = append(names, c.Name)
		}
	}
	return names
}

// accountLocalError marks err, from the local account directory, as this
// machine's.
func accountLocalError(cfg *config, err error) error {
	return &renew.LocalError{What: "ACME account directory " + cfg.AccountDir, Err: err,
		Fix: "check account_dir: it and account.key must be owned by the user renew-certificates runs as, not writable by others (account.key mode 0600)"}
}

// accountFleet is the fleet client of a Renewer that shares the ACME
// account before the first run that reads the fleet (see above).
type accountFleet struct {
	*fleet.Client
	share func(ctx context.Context) error

	mu     sync.Mutex
	shared bool // share succeeded: the local key is the fleet's
}

// View implements renew.Fleet: the account is shared first, once.
func (f *accountFleet) View(ctx context.Context, certs []renew.Certificate) ([]renew.FleetView, error) {
	if err := f.ensureShared(ctx); err != nil {
		if ctx.Err() != nil || !(errors.Is(err, fleet.ErrRecord) || errors.Is(err, renew.ErrLocal)) {
			return nil, err // Deferred (Interrupted)
		}
		out := make([]renew.FleetView, len(certs))
		for i, c := range certs {
			out[i] = renew.FleetView{Name: c.Name, Err: fmt.Errorf("the fleet's ACME account: %w", err)}
		}
		return out, nil
	}
	return f.Client.View(ctx, certs)
}

func (f *accountFleet) ensureShared(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shared {
		return nil
	}
	if err := f.share(ctx); err != nil {
		if errors.Is(err, errAdoptionPostponed) {
			return nil
		}
		return err
	}
	f.shared = true
	return nil
}

// accountStatus says, in one line, whether this node's ACME account key
// is the fleet's, changing nothing but what reading the key takes (the
// account directory's lock): for -status and -dry-run. problem is set
// when a key cannot be read: a run would fail every certificate.
func accountStatus(ctx context.Context, c *fleet.Client, cfg *config, log *slog.Logger) accountLine {
	line, problem := accountStatusLine(ctx, c, cfg, log)
	return accountLine{line: line, problem: problem}
}

// accountLine is what accountStatus found.
type accountLine struct {
	line    string
	problem bool
}

func accountStatusLine(ctx context.Context, c *fleet.Client, cfg *config, log *slog.Logger) (line string, problem bool) {
	ac := accountConfig(cfg, log)
	shared, err := c.ReadAccountKey(ctx, cfg.DirectoryURL)
	defer clear(shared)
	var local []byte
	if ac.HasAccount() {
		var lerr error
		if local, lerr = ac.AccountKey(ctx); lerr != nil {
			return fmt.Sprintf("the local ACME account key cannot be read: %s", oneLine(lerr.Error())), true
		}
		defer clear(local)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist) && local == nil:
		return fmt.Sprintf("neither this node nor the fleet has an ACME account key for %s yet: a run creates one and shares it", cfg.DirectoryURL), false
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("the fleet has no ACME account key for %s yet: a run shares this node's", cfg.DirectoryURL), false
	case err != nil:
		return fmt.Sprintf("the fleet's ACME account key cannot be read: %s", oneLine(err.Error())), true
	case local == nil:
		return fmt.Sprintf("this node has no ACME account key yet: a run adopts the fleet's for %s", cfg.DirectoryURL), false
	case bytes.Equal(local, shared):
		return fmt.Sprintf("the local ACME account key is the fleet's for %s", cfg.DirectoryURL), false
	default:
		return fmt.Sprintf("the local ACME account key is not the fleet's for %s: a run adopts the fleet's and keeps the local one as %s", cfg.DirectoryURL, oldAccountKeyPath(cfg)), false
	}
}
