package acmeissuer

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/go-jose/go-jose/v4"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/pubkey"
)

// AdoptAccount makes an ACME account another client registered at
// c.DirectoryURL the account of c.AccountDir, so that the Issuers built
// from c order with it: the CA then sees the same account as before the
// switch (its rate limits, its ARI renewal exemption, its
// external account binding). key is the account's private key, as PEM
// (PKCS #8, EC or RSA) or as a JSON Web Key with its private part (certbot's
// private_key.json); accountURL is the account's URL at the CA (the "uri"
// of certbot's regr.json, the registration "uri" of lego's account file).
// No request reaches the CA.
//
// Under the account directory's lock:
//
//  1. when account.key is already key: account.json is written for
//     accountURL if missing (adopted true), and nothing changes if it
//     names accountURL at c.DirectoryURL (adopted false); one naming
//     another account or CA is an error, and nothing changes;
//  2. when the directory holds another account (another account.key, or
//     an account.json without a key): an error matching fs.ErrExist, and
//     nothing changes. The orders its lineages
//     journaled belong to that account: replacing it is
//     [Config.AdoptAccountKey]'s decision, not an import's;
//  3. key is written as account.key (PKCS #8 PEM, durable, 0600);
//  4. account.json is written for accountURL (durable, 0600).
//
// A process killed between (3) and (4) leaves the adopted key without
// account.json: the next Issue finds its account at the CA by the key,
// and adopting again finishes.
// An Issuer that already loaded the account keeps using it: adopt before
// building the Issuers. It logs nothing; errors never include key material.
func (c *Config) AdoptAccount(ctx context.Context, key []byte, accountURL string) (adopted bool, err error) {
	const step = "account"
	keyPEM, err := accountKeyPEM(key)
	if err != nil {
		return false, permanent("", step, fmt.Errorf("adopt account: %w", err))
	}
	want, err := parseKey(keyPEM)
	if err != nil {
		return false, permanent("", step, fmt.Errorf("adopt account: %w", err))
	}
	if u, err := url.Parse(accountURL); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return false, permanent("", step, fmt.Errorf("adopt account: account URL %q is not an http(s) URL", accountURL))
	}
	i, err := c.accountIssuer()
	if err != nil {
		return false, err
	}
	unlock, err := i.lockAccountDir(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	dir := i.cfg.AccountDir
	keyPath := filepath.Join(dir, accountKeyFile)
	recPath := filepath.Join(dir, accountRecordFile)
	data, err := readAccountFile(keyPath, privateKeyBits)
	switch {
	case err == nil:
		have, err := parseKey(data)
		if err != nil {
			return false, permanent("", step, fmt.Errorf("account key %s: %w", keyPath, err))
		}
		if pubkey.Equal(have.Public(), want.Public()) {
			// (1)
			rec, err := readAccountRecord(recPath)
			switch {
			case err == nil && rec.URL == accountURL && rec.DirectoryURL == i.cfg.DirectoryURL:
				return false, nil
			case err == nil:
				return false, permanent("", step, fmt.Errorf("%s names the account %s at %s, not %s at %s: the key is already another account's here", recPath, rec.URL, rec.DirectoryURL, accountURL, i.cfg.DirectoryURL))
			case !errors.Is(err, fs.ErrNotExist):
				return false, permanent("", step, err)
			}
			return true, i.writeAccountRecord(accountURL)
		}
		// (2)
		return false, permanent("", step, fmt.Errorf("%s holds the key of another account: %w", keyPath, fs.ErrExist))
	case !errors.Is(err, fs.ErrNotExist):
		return false, permanent("", step, fmt.Errorf("account key: %w", err))
	}
	if _, err := os.Lstat(recPath); !errors.Is(err, fs.ErrNotExist) {
		return false, permanent("", step, fmt.Errorf("%s names an account whose key %s is missing: %w", recPath, keyPath, fs.ErrExist))
	}
	// (3)
	if err := durable.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return false, permanent("", step, fmt.Errorf("write account key %s: %w", keyPath, err))
	}
	// (4)
	return true, i.writeAccountRecord(accountURL)
}

// accountKeyPEM returns key as PEM: key itself when it is PEM, a JSON Web
// Key's private key as PKCS #8 otherwise. Errors never include key
// material.
func accountKeyPEM(key []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(key)
	if !bytes.HasPrefix(trimmed, []byte("{")) {
		return bytes.Clone(key), nil
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(trimmed, &jwk); err != nil {
		return nil, errors.New("not a PEM private key nor a JSON Web Key")
	}
	if jwk.IsPublic() {
		return nil, errors.New("the JSON Web Key has no private part")
	}
	der, err := x509.MarshalPKCS8PrivateKey(jwk.Key)
	if err != nil {
		return nil, fmt.Errorf("JSON Web Key of unsupported type %T", jwk.Key)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
