package acmeissuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/certcrypto"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/lockfile"
	"github.com/renewkit/renewkit/renew"
)

// Files in Config.AccountDir.
const (
	accountKeyFile    = "account.key"
	accountRecordFile = "account.json"
	accountLockFile   = ".lock"
	// oldAccountKeyFile keeps the key a CA refused when the account was
	// registered again with a new one (see reRegister).
	oldAccountKeyFile = "account.key.old"
)

// accountRecord is account.json.
type accountRecord struct {
	// URL is the account URL (the JWS "kid").
	URL string `json:"url"`
	// DirectoryURL is the CA directory the account belongs to.
	DirectoryURL string `json:"directory_url"`
	// Email is the contact registered with the account, if any.
	Email string `json:"email,omitempty"`
	// Created is when this record was first written.
	Created time.Time `json:"created"`
}

// accountCore returns the API client bound to the account, creating or
// finding the account on first use. Errors are classified.
func (i *Issuer) accountCore(ctx context.Context) (*api.Core, error) {
	if err := i.acquireInit(ctx); err != nil {
		return nil, err
	}
	defer i.releaseInit()
	if i.core != nil {
		return i.core, nil
	}
	core, err := i.setUpAccount(ctx)
	if err != nil {
		return nil, err
	}
	i.core = core
	return core, nil
}

// directoryCore returns an API client for unauthenticated requests (ARI):
// the account's if it exists, else one without an account.
func (i *Issuer) directoryCore(ctx context.Context) (*api.Core, error) {
	if err := i.acquireInit(ctx); err != nil {
		return nil, err
	}
	defer i.releaseInit()
	if i.core != nil {
		return i.core, nil
	}
	if i.anon == nil {
		core, err := i.newCore(ctx, "", "directory", "", nil)
		if err != nil {
			return nil, err
		}
		i.anon = core
	}
	return i.anon, nil
}

func (i *Issuer) acquireInit(ctx context.Context) error {
	select {
	case i.initSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return stopped(ctx, "", "account")
	}
}

func (i *Issuer) releaseInit() { <-i.initSem }

// newCore creates a lego API client (fetching the directory, cancellable by
// ctx). key nil means a throw-away key: enough for unauthenticated GETs.
func (i *Issuer) newCore(ctx context.Context, name, step, kid string, key crypto.Signer) (*api.Core, error) {
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, permanent(name, step, err)
		}
		key = k
	}
	hc, err := i.cfg.newHTTPClient()
	if err != nil {
		return nil, permanent(name, step, err)
	}
	rt := &recordingTransport{base: hc.Transport, now: i.now}
	hc.Transport = rt
	bctx, ri := withRespInfo(ctx)
	rt.bootCtx.Store(&bctx)
	core, err := api.New(hc, i.cfg.UserAgent, i.cfg.DirectoryURL, kid, key)
	rt.bootCtx.Store(nil)
	if err != nil {
		if terr := i.cfg.trustError(err); terr != nil && ctx.Err() == nil {
			// Local and deterministic: no retry, no CA backoff.
			return nil, terr
		}
		return nil, fail(ctx, name, step+": directory "+i.cfg.DirectoryURL, err, ri)
	}
	return core, nil
}

// setUpAccount loads the account key and record, creating or finding the
// account as needed, under the account directory's lock:
//
//  1. take AccountDir/.lock (concurrent first runs serialize here);
//  2. read account.key, or generate a P-256 key and write it (0600, atomic);
//  3. read account.json; if present (and for this directory URL), done;
//  4. otherwise look the account up by its key (a previous run may have
//     registered it and died before step 5), else register it;
//  5. write account.json.
func (i *Issuer) setUpAccount(ctx context.Context) (*api.Core, error) {
	const step = "account"
	dir := i.cfg.AccountDir
	// (1), (2)
	key, unlock, err := i.lockAccount(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// (3)
	recPath := filepath.Join(dir, accountRecordFile)
	rec, err := readAccountRecord(recPath)
	switch {
	case err == nil:
		if rec.DirectoryURL != i.cfg.DirectoryURL {
			return nil, permanent("", step, fmt.Errorf("%s belongs to the CA at %s, not %s: use one AccountDir per CA", recPath, rec.DirectoryURL, i.cfg.DirectoryURL))
		}
		if rec.Email != i.cfg.Email {
			i.log.Info("account contact differs from Config.Email; the account keeps its registered contact", "account", rec.URL)
		}
		return i.newCore(ctx, "", step, rec.URL, key)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, permanent("", step, err)
	}

	// (4)
	core, acct, err := i.findOrRegister(ctx, key)
	if err != nil {
		return nil, err
	}

	// (5)
	if err := i.writeAccountRecord(acct.Location); err != nil {
		return nil, err
	}
	return core, nil
}

// lockAccount takes AccountDir/.lock (concurrent processes serialize
// here), removes the temporary files of an account write that a killed
// process left (the lock makes this the only writer), and reads or creates
// the account key. unlock releases the lock.
func (i *Issuer) lockAccount(ctx context.Context) (key crypto.Signer, unlock func(), err error) {
	const step = "account"
	unlock, err = i.lockAccountDir(ctx)
	if err != nil {
		return nil, nil, err
	}
	if key, err = i.loadOrCreateAccountKey(); err != nil {
		unlock()
		return nil, nil, permanent("", step, err)
	}
	return key, unlock, nil
}

// lockAccountDir is lockAccount without the account key: it takes
// AccountDir/.lock and removes the temporary files a killed process left.
func (i *Issuer) lockAccountDir(ctx context.Context) (unlock func(), err error) {
	const step = "account"
	dir := i.cfg.AccountDir
	lock, err := lockfile.Acquire(ctx, filepath.Join(dir, accountLockFile))
	if err != nil {
		if ctx.Err() != nil {
			return nil, stopped(ctx, "", step)
		}
		return nil, permanent("", step, fmt.Errorf("lock %s: %w", dir, err))
	}
	for _, f := range []string{accountKeyFile, accountRecordFile, oldAccountKeyFile} {
		if removed, err := durable.RemoveTemps(filepath.Join(dir, f), time.Time{}); err != nil {
			i.log.Warn("could not remove leftover temporary files", "error", err)
		} else if len(removed) > 0 {
			i.log.Info("removed temporary files a killed run left", "files", removed)
		}
	}
	return func() {
		if err := lock.Unlock(); err != nil {
			i.log.Warn("unlock account directory", "dir", dir, "error", err)
		}
	}, nil
}

// writeAccountRecord writes account.json for the account at url.
func (i *Issuer) writeAccountRecord(url string) error {
	recPath := filepath.Join(i.cfg.AccountDir, accountRecordFile)
	rec := accountRecord{URL: url, DirectoryURL: i.cfg.DirectoryURL, Email: i.cfg.Email, Created: i.now().UTC()}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return permanent("", "account", err)
	}
	if err := durable.WriteFile(recPath, append(data, '\n'), 0o600); err != nil {
		return permanent("", "account", fmt.Errorf("write %s: %w", recPath, err))
	}
	return nil
}

// accountGone reports whether err is the CA answering accountDoesNotExist to
// a request signed with the account's URL.
func accountGone(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.ProblemType == acme.AccountDoesNotExistErrorType
}

// reRegister replaces the account the CA no longer knows (stale's), once
// per Issue or Resume call:
//
//  1. if another call of this Issuer replaced stale already, use its
//     account;
//  2. take AccountDir/.lock and read the key on disk;
//  3. if account.json now names another account (another process
//     registered again already), use it with the key on disk;
//  4. look up or register the account of the key on disk;
//  5. if the CA refuses that key (badPublicKey), keep it as
//     account.key.old, write a new key to account.key (before registering,
//     like the first key) and register that;
//  6. write account.json.
//
// A process killed after (5) wrote the new key leaves account.json naming
// the forgotten account: the next run is answered accountDoesNotExist
// again and registers the new key at (4).
func (i *Issuer) reRegister(ctx context.Context, stale *api.Core) (*api.Core, error) {
	const step = "account"
	if err := i.acquireInit(ctx); err != nil {
		return nil, err
	}
	defer i.releaseInit()
	// (1)
	if i.core != nil && i.core != stale {
		return i.core, nil
	}
	i.core = nil
	i.log.Warn("the CA no longer knows the ACME account; registering it again", "account", stale.GetKID(), "directory", i.cfg.DirectoryURL)
	// (2)
	key, unlock, err := i.lockAccount(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// (3)
	if rec, err := readAccountRecord(filepath.Join(i.cfg.AccountDir, accountRecordFile)); err == nil &&
		rec.URL != stale.GetKID() && rec.DirectoryURL == i.cfg.DirectoryURL {
		core, err := i.newCore(ctx, "", step, rec.URL, key)
		if err != nil {
			return nil, err
		}
		i.core = core
		return core, nil
	}
	// (4)
	core, acct, err := i.findOrRegister(ctx, key)
	if e, ok := errors.AsType[*Error](err); ok && e.ProblemType == acme.BadPublicKeyErrorType {
		// (5)
		i.log.Warn("the CA refuses the account key; registering a new one", "detail", e.Detail)
		if key, err = i.replaceAccountKey(); err != nil {
			return nil, permanent("", step, err)
		}
		core, acct, err = i.findOrRegister(ctx, key)
	}
	if err != nil {
		return nil, err
	}
	// (6)
	if err := i.writeAccountRecord(acct.Location); err != nil {
		return nil, err
	}
	i.log.Info("registered the ACME account again", "account", acct.Location, "was", stale.GetKID())
	i.core = core
	return core, nil
}

// replaceAccountKey keeps account.key as account.key.old and writes a new
// account key in its place.
func (i *Issuer) replaceAccountKey() (crypto.Signer, error) {
	if err := i.keepOldAccountKey(); err != nil {
		return nil, err
	}
	return i.writeNewAccountKey(filepath.Join(i.cfg.AccountDir, accountKeyFile))
}

// keepOldAccountKey copies account.key to account.key.old, durably, before
// the key is replaced (a refused key, or the fleet's adopted).
func (i *Issuer) keepOldAccountKey() error {
	path := filepath.Join(i.cfg.AccountDir, accountKeyFile)
	data, err := readAccountFile(path, privateKeyBits)
	if err != nil {
		return fmt.Errorf("account key: %w", err)
	}
	old := filepath.Join(i.cfg.AccountDir, oldAccountKeyFile)
	if err := durable.WriteFile(old, data, 0o600); err != nil {
		return fmt.Errorf("keep the previous account key as %s: %w", old, err)
	}
	return nil
}

// findOrRegister finds the account of key at the CA, or creates it. The
// returned core is bound to the account.
func (i *Issuer) findOrRegister(ctx context.Context, key crypto.Signer) (*api.Core, acme.ExtendedAccount, error) {
	const step = "account"
	core, err := i.newCore(ctx, "", step, "", key)
	if err != nil {
		return nil, acme.ExtendedAccount{}, err
	}
	cctx, ri := withRespInfo(ctx)
	acct, err := core.Accounts.New(cctx, acme.Account{OnlyReturnExisting: true})
	if err == nil && acct.Location != "" {
		i.log.Info("found existing ACME account by its key", "account", acct.Location)
		return core, acct, nil
	}
	if pd, ok := errors.AsType[*acme.ProblemDetails](err); !ok || pd.Type != acme.AccountDoesNotExistErrorType {
		if err == nil {
			err = errors.New("the CA returned no account URL")
		}
		return nil, acct, fail(ctx, "", "account lookup", err, ri)
	}

	meta := core.GetDirectory().Meta
	if meta.TermsOfService != "" && !i.cfg.AgreeTOS {
		return nil, acct, permanent("", "account registration", &renew.ConfigError{Field: "AgreeTOS",
			Err: fmt.Errorf("false, and the CA requires agreement to its terms of service at %s: read them, then set it to true", meta.TermsOfService)})
	}
	if meta.ExternalAccountRequired && i.cfg.EAB == nil {
		return nil, acct, permanent("", "account registration", &renew.ConfigError{Field: "EAB",
			Err: errors.New("not set, and the CA requires External Account Binding: set it to the key ID and HMAC key the CA gave you")})
	}
	if core.GetKID() != "" {
		// lego quirk: a client that has a kid signs with it and cannot register.
		if core, err = i.newCore(ctx, "", step, "", key); err != nil {
			return nil, acct, err
		}
	}
	req := acme.Account{TermsOfServiceAgreed: i.cfg.AgreeTOS}
	if i.cfg.Email != "" {
		req.Contact = []string{"mailto:" + i.cfg.Email}
	}
	cctx, ri = withRespInfo(ctx)
	if i.cfg.EAB != nil {
		acct, err = core.Accounts.NewEAB(cctx, req, i.cfg.EAB.KeyID, i.cfg.EAB.HMAC)
	} else {
		acct, err = core.Accounts.New(cctx, req)
	}
	if err == nil && acct.Location == "" {
		err = errors.New("the CA returned no account URL")
	}
	if err != nil {
		e, c := classify(ctx, "", "account registration", err, ri)
		if e.ProblemType == acme.ExternalAccountRequiredErrorType {
			// The CA's problem, with the field to set.
			e.Err = &renew.ConfigError{Field: "EAB", Err: fmt.Errorf("the CA requires External Account Binding: %w", e.Err)}
			e.Detail += " (set EAB)"
		}
		return nil, acct, wrapClass(e, c)
	}
	i.log.Info("created ACME account", "account", acct.Location, "directory", i.cfg.DirectoryURL)
	return core, acct, nil
}

// loadOrCreateAccountKey reads account.key, or creates it when neither it
// nor account.json exists.
func (i *Issuer) loadOrCreateAccountKey() (crypto.Signer, error) {
	path := filepath.Join(i.cfg.AccountDir, accountKeyFile)
	data, err := readAccountFile(path, privateKeyBits)
	if err == nil {
		key, err := parseKey(data)
		if err != nil {
			return nil, fmt.Errorf("account key %s: %w", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("account key: %w", err)
	}
	recPath := filepath.Join(i.cfg.AccountDir, accountRecordFile)
	if _, err := os.Stat(recPath); err == nil {
		// A new key would mean a second account. Refuse.
		return nil, fmt.Errorf("%s exists but its key %s is missing: restore the key, or remove %s to start a new account", recPath, path, recPath)
	}
	return i.writeNewAccountKey(path)
}

// writeNewAccountKey generates a P-256 account key and writes it to path
// (0600, atomic).
func (i *Issuer) writeNewAccountKey(path string) (crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate account key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode account key: %w", err)
	}
	if err := durable.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write account key %s: %w", path, err)
	}
	i.log.Info("generated ACME account key", "path", path)
	return key, nil
}

// parseKey parses a PEM private key (PKCS#8, SEC 1 or PKCS#1). The error
// never contains key material.
func parseKey(data []byte) (crypto.Signer, error) {
	key, err := certcrypto.ParsePEMPrivateKey(data)
	if err != nil {
		return nil, errors.New("not a PEM private key (PKCS#8, EC or RSA)")
	}
	return key, nil
}

// readAccountRecord reads and parses account.json at path.
func readAccountRecord(path string) (accountRecord, error) {
	data, err := readAccountFile(path, publicBits)
	if err != nil {
		return accountRecord{}, err
	}
	return parseAccountRecord(path, data)
}

// parseAccountRecord parses data, account.json read from path (named in
// errors).
func parseAccountRecord(path string, data []byte) (accountRecord, error) {
	var rec accountRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("account record %s: %w", path, err)
	}
	if rec.URL == "" || rec.DirectoryURL == "" {
		return rec, fmt.Errorf("account record %s: missing url or directory_url", path)
	}
	return rec, nil
}
