package acmeissuer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/pubkey"

	"github.com/renewkit/renewkit/renew"
)

// AccountKey returns the ACME account key of c.AccountDir (account.key,
// PEM), creating it as the first Issue would when there is none: a P-256
// key written durably with mode 0600, under the account directory's lock,
// with the checks of "Trust in the account directory" (the directory is
// created 0700 if missing). It contacts no CA: the account is registered
// or found by the first order. It is what a fleet shares (package fleet,
// Client.ShareAccountKey), so that every node orders with one account.
// The returned bytes are secret: never log them.
func (c *Config) AccountKey(ctx context.Context) ([]byte, error) {
	i, err := c.accountIssuer()
	if err != nil {
		return nil, err
	}
	_, unlock, err := i.lockAccount(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	path := filepath.Join(i.cfg.AccountDir, accountKeyFile)
	data, err := readAccountFile(path, privateKeyBits)
	if err != nil {
		return nil, permanent("", "account", fmt.Errorf("account key: %w", err))
	}
	return data, nil
}

// AdoptAccountKey makes keyPEM (a PEM private key: PKCS#8, EC or RSA) the
// account key of c.AccountDir, under the account directory's lock:
//
//  1. read account.key (creating it if missing, as [Config.AccountKey]);
//     when it is the same key as keyPEM, nothing changes (adopted false);
//  2. keep it as account.key.old (durable, 0600; replacing an older one);
//  3. remove account.json, which names the old key's account;
//  4. write keyPEM as account.key (durable, 0600).
//
// The next Issue or Resume then finds the account of the adopted key at
// the CA by its key (registering it only if the CA does not know it, which
// needs AgreeTOS at a CA with terms), and writes account.json for it. A
// process killed between the steps leaves either the old key without
// account.json (the old account is found again; adopting once more
// finishes) or the new key without it: never a key with another key's
// account record. An Issuer that already loaded the account (an Issue,
// Resume or Connect) keeps using it: adopt before building the Issuers
// that should use the adopted key. It logs nothing: the caller says what it
// adopted and why.
func (c *Config) AdoptAccountKey(ctx context.Context, keyPEM []byte) (adopted bool, err error) {
	const step = "account"
	want, err := parseKey(keyPEM)
	if err != nil {
		return false, permanent("", step, fmt.Errorf("adopt account key: %w", err))
	}
	i, err := c.accountIssuer()
	if err != nil {
		return false, err
	}
	// (1)
	have, unlock, err := i.lockAccount(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	if pubkey.Equal(have.Public(), want.Public()) {
		return false, nil
	}
	dir := i.cfg.AccountDir
	keyPath := filepath.Join(dir, accountKeyFile)
	// (2)
	if err := i.keepOldAccountKey(); err != nil {
		return false, permanent("", step, err)
	}
	// (3)
	recPath := filepath.Join(dir, accountRecordFile)
	if err := os.Remove(recPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, permanent("", step, fmt.Errorf("remove %s: %w", recPath, err))
	}
	if err := durable.SyncDir(dir); err != nil {
		return false, permanent("", step, fmt.Errorf("remove %s: %w", recPath, err))
	}
	// (4)
	if err := durable.WriteFile(keyPath, bytes.Clone(keyPEM), 0o600); err != nil {
		return false, permanent("", step, fmt.Errorf("write account key %s: %w", keyPath, err))
	}
	return true, nil
}

// accountIssuer is an Issuer for the account functions of c only: no
// challenge is needed, and the account directory is made and checked as
// [New] does.
func (c *Config) accountIssuer() (*Issuer, error) {
	if c.AccountDir == "" {
		return nil, fmt.Errorf("%w: AccountDir is required", renew.ErrConfig)
	}
	cfg := c.withDefaults()
	if err := makeAccountDir(cfg.AccountDir); err != nil {
		return nil, err
	}
	return &Issuer{cfg: cfg, log: cfg.Logger, now: time.Now}, nil
}
