package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// accountRecord is the fleet's ACME account key for one CA (one ACME
// directory URL), stored under root/account/HASH.
type accountRecord struct {
	V            int       `json:"v"`
	DirectoryURL string    `json:"directory_url"`
	Node         string    `json:"node"`    // the node whose key it was
	Created      time.Time `json:"created"` // when it was shared
	// Epoch numbers the fleet's account for the CA: a new record (the
	// first share, or a share after the record was deleted to change the
	// account) gets a higher epoch than the sharing node ever accepted.
	Epoch uint64 `json:"epoch"`
	Key   sealed `json:"key"`
}

// SharedAccount is the fleet's ACME account key for one CA.
type SharedAccount struct {
	// KeyPEM is the account's private key, PEM.
	KeyPEM []byte
	// Epoch numbers the fleet's account for the CA (at least 1). A node
	// remembers the highest epoch it accepted and passes it as known to
	// ShareAccountKey, which refuses an older record: a replayed one.
	Epoch uint64
}

func (r *accountRecord) version() int { return r.V }

// accountField is the field an account key is sealed for (associated data).
const accountField = "account_key"

// account is the etcd key of the ACME account key of the CA at directoryURL:
// root/account/ and the first 8 bytes of SHA-256(directoryURL) in hex.
func (k keyspace) account(directoryURL string) string {
	sum := sha256.Sum256([]byte(directoryURL))
	return k.root + "account/" + hex.EncodeToString(sum[:8])
}

// ShareAccountKey makes the fleet use one ACME account per CA. An order
// can be fetched and finalized only by the account that placed it: a node
// that takes a lineage over must use the account of the node that
// journaled the order, or it cannot resume it and would order again.
// [ShareAccount] runs the whole protocol around it (adopting the fleet's
// key, remembering the epoch); this is its etcd step.
//
// keyPEM is this node's account key for the CA at directoryURL (a PEM
// private key), and known the highest epoch of the fleet's account for
// that CA this node has accepted (0: none). In one transaction,
// ShareAccountKey stores keyPEM, sealed, authenticated and bound to its
// etcd key and directoryURL, with epoch known+1, under
// PREFIX/v1/account/HASH (HASH: the first 8 bytes of SHA-256 of
// directoryURL, hex) unless that key exists: the first node to share
// wins, without a lock. It returns the fleet's account: keyPEM when this
// call stored it, else the one another node shared first, which the
// caller adopts as its account key (the account exists at the CA then: it
// is found by its key, without registering again).
//
// A record with an epoch below known, or at known with another key than
// keyPEM, is refused (a [*RecordError]): it is older than what this node
// accepted, a replay. A record of the unauthenticated format of earlier
// releases is replaced as if absent.
//
// The record is never replaced otherwise. Every node's account.key is the
// fleet's once it has shared, so deleting the record alone brings the same
// key back (with a higher epoch). To change the fleet's account: put the
// new key in one node's account directory (account.key, with account.json
// removed), delete the record (etcdctl del KEY), run that node first (it
// shares the new key with an epoch above the old one), then the others
// (they adopt it; a -serve node shares when it starts or reloads on
// SIGHUP). Errors: etcd not answering matches [ErrUnavailable]; a record
// that cannot be used (not decodable, not authenticated, for another
// directory, sealed with a key this node lacks, not a PEM private key,
// older than known) is a [*RecordError] naming the etcd key, never key
// material.
func (c *Client) ShareAccountKey(ctx context.Context, directoryURL string, keyPEM []byte, known uint64) (SharedAccount, error) {
	if err := checkAccountArgs(directoryURL); err != nil {
		return SharedAccount{}, err
	}
	key := c.keys.account(directoryURL)
	if !isPrivateKeyPEM(keyPEM) {
		return SharedAccount{}, fmt.Errorf("fleet: share %s: the account key given is not a PEM private key; nothing written", key)
	}
	if known >= MaxGeneration {
		return SharedAccount{}, fmt.Errorf("fleet: share %s: account epoch %d known here is at the limit of %d; nothing written", key, known, int64(MaxGeneration))
	}
	epoch := known + 1
	value := c.wrap(key, kindAccount, directoryURL, accountRecord{
		V: recordVersion, DirectoryURL: directoryURL, Node: c.node, Created: c.now().UTC(),
		Epoch: epoch, Key: c.sealer.seal(keyPEM, key, directoryURL, accountField),
	})
	if err := checkSize(key, value, MaxStateSize); err != nil {
		return SharedAccount{}, err
	}
	// Create the record if absent; if a legacy one is there, replace that
	// one (compared by its mod revision): at most twice.
	var modRev int64
	for range 2 {
		var resp *clientv3.TxnResponse
		err := c.call(ctx, "share "+key, func(ctx context.Context) error {
			var err error
			resp, err = c.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
				Then(clientv3.OpPut(key, value)).
				Else(clientv3.OpGet(key)).Commit()
			return err
		})
		if err != nil {
			return SharedAccount{}, err
		}
		if resp.Succeeded {
			return SharedAccount{KeyPEM: bytes.Clone(keyPEM), Epoch: epoch}, nil
		}
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			modRev = 0 // deleted meanwhile: create it
			continue
		}
		acc, err := c.decodeAccount(key, directoryURL, kvs[0].Value)
		if errors.Is(err, errLegacy) {
			c.log.Warn("fleet: replacing an account record of the unauthenticated format of earlier releases", "key", key)
			modRev = kvs[0].ModRevision
			continue
		}
		if err != nil {
			return SharedAccount{}, err
		}
		if acc.Epoch < known || (acc.Epoch == known && !bytes.Equal(acc.KeyPEM, keyPEM)) {
			clear(acc.KeyPEM)
			return SharedAccount{}, recordErr(key, "the fleet's account record has epoch %d, older than epoch %d this node accepted (a replayed record, or etcd restored from a backup: see renew/acmeissuer's fleet account documentation); refused", acc.Epoch, known)
		}
		return acc, nil
	}
	return SharedAccount{}, fmt.Errorf("fleet: share %s: the record kept changing during the share; try again", key)
}

// ShareAccount is [Client.ShareAccountKey] in the form a renew.Renewer
// looks for on its Fleet: with it, renew runs the shared-account protocol
// (share, adopt, wait for the node's own orders, remember the epoch) when
// its Issuer implements renew.SharedAccountIssuer, so that a library user
// of fleet mode gets it without more code.
func (c *Client) ShareAccount(ctx context.Context, directoryURL string, keyPEM []byte, known uint64) ([]byte, uint64, error) {
	acc, err := c.ShareAccountKey(ctx, directoryURL, keyPEM, known)
	if err != nil {
		return nil, 0, err
	}
	return acc.KeyPEM, acc.Epoch, nil
}

// ReadAccountKey returns the fleet's ACME account for the CA at
// directoryURL, as [Client.ShareAccountKey] stored it, without writing:
// what a status or dry run compares with the local key. No key shared yet
// (or only a record of the unauthenticated format of earlier releases) is
// an error matching [fs.ErrNotExist]; the other errors are
// ShareAccountKey's.
func (c *Client) ReadAccountKey(ctx context.Context, directoryURL string) (SharedAccount, error) {
	if err := checkAccountArgs(directoryURL); err != nil {
		return SharedAccount{}, err
	}
	key := c.keys.account(directoryURL)
	v, err := c.getOne(ctx, key, "no account key shared yet")
	if err != nil {
		return SharedAccount{}, err
	}
	acc, err := c.decodeAccount(key, directoryURL, v)
	if errors.Is(err, errLegacy) {
		return SharedAccount{}, fmt.Errorf("fleet: read %s: %w: %w", key, fs.ErrNotExist, err)
	}
	return acc, err
}

// decodeAccount decodes, authenticates and unseals the account record
// stored under key.
func (c *Client) decodeAccount(key, directoryURL string, value []byte) (SharedAccount, error) {
	var rec accountRecord
	if err := c.unwrap(key, kindAccount, directoryURL, value, MaxStateSize, &rec); err != nil {
		return SharedAccount{}, err
	}
	if rec.DirectoryURL != directoryURL {
		return SharedAccount{}, recordErr(key, "account key of the CA at %q, stored for %q", rec.DirectoryURL, directoryURL)
	}
	if rec.Epoch < 1 || rec.Epoch > MaxGeneration {
		return SharedAccount{}, recordErr(key, "account epoch %d, want 1 to %d", rec.Epoch, int64(MaxGeneration))
	}
	keyPEM, err := c.sealer.unseal(rec.Key, key, directoryURL, accountField)
	if err != nil {
		return SharedAccount{}, err
	}
	if !isPrivateKeyPEM(keyPEM) {
		clear(keyPEM)
		return SharedAccount{}, recordErr(key, "the sealed account key is not a PEM private key")
	}
	return SharedAccount{KeyPEM: keyPEM, Epoch: rec.Epoch}, nil
}

// checkAccountArgs refuses an empty directory URL.
func checkAccountArgs(directoryURL string) error {
	if directoryURL == "" {
		return fmt.Errorf("fleet: account key: no ACME directory URL given")
	}
	return nil
}

// isPrivateKeyPEM reports whether b is one PEM block of a private key
// (PKCS#8, EC or RSA) and nothing else but white space.
func isPrivateKeyPEM(b []byte) bool {
	block, rest := pem.Decode(b)
	return block != nil && strings.HasSuffix(block.Type, "PRIVATE KEY") && len(bytes.TrimSpace(rest)) == 0
}
