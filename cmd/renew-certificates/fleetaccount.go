package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// The fleet's ACME account: the library shares it (renew's fleet account
// documentation: a Renewer whose Issuer implements
// renew.SharedAccountIssuer and whose Fleet is a *fleet.Client shares,
// adopts, and waits while this node has orders journaled). The CLI's
// issuers implement it for their one account directory (issuers.SharedAccount);
// what is left here is the status line.

// accountConfig is the acmeissuer.Config of cfg's ACME account, for the
// account functions (no challenge is needed for them).
func accountConfig(cfg *config, log *slog.Logger) acmeissuer.Config {
	return acmeissuer.Config{DirectoryURL: cfg.DirectoryURL, AccountDir: cfg.AccountDir, Logger: log.With("component", "acme")}
}

// oldAccountKeyPath is where AdoptAccountKey keeps the previous key.
func oldAccountKeyPath(cfg *config) string {
	return filepath.Join(cfg.AccountDir, "account.key.old")
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
	acc, err := c.ReadAccountKey(ctx, cfg.DirectoryURL)
	shared := acc.KeyPEM
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
	}
	if known, kerr := ac.FleetEpoch(ctx); kerr == nil && acc.Epoch < known {
		return fmt.Sprintf("the fleet's ACME account for %s has epoch %d, older than epoch %d this node accepted: a replayed record, refused", cfg.DirectoryURL, acc.Epoch, known), true
	}
	switch {
	case local == nil:
		return fmt.Sprintf("this node has no ACME account key yet: a run adopts the fleet's for %s", cfg.DirectoryURL), false
	case bytes.Equal(local, shared):
		return fmt.Sprintf("the local ACME account key is the fleet's for %s", cfg.DirectoryURL), false
	default:
		return fmt.Sprintf("the local ACME account key is not the fleet's for %s: a run adopts the fleet's and keeps the local one as %s", cfg.DirectoryURL, oldAccountKeyPath(cfg)), false
	}
}
