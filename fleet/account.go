package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
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
	Key          sealed    `json:"key"`
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
//
// keyPEM is this node's account key for the CA at directoryURL (a PEM
// private key). In one transaction, ShareAccountKey stores it, sealed and
// bound to its etcd key and directoryURL, under
// PREFIX/v1/account/HASH (HASH: the first 8 bytes of SHA-256 of
// directoryURL, hex) unless that key exists: the first node to share wins,
// without a lock. It returns the fleet's key: keyPEM when this call stored
// it (or the fleet already had the same), else the key another node shared
// first, which the caller adopts as its account key (the account exists at
// the CA then: it is found by its key, without registering again).
//
// The record is never replaced. Every node's account.key is the fleet's
// once it has shared, so deleting the record alone brings the same key
// back. To change the fleet's account: put the new key in one node's
// account directory (account.key, with account.json removed), delete the
// record (etcdctl del KEY), run that node first (it shares the new key),
// then the others (they adopt it; a -serve node shares when it starts or
// reloads on SIGHUP). Errors: etcd not
// answering matches [ErrUnavailable]; a record that cannot be used (not
// decodable, for another directory, sealed with a key this node lacks, not
// a PEM private key) is a [*RecordError] naming the etcd key, never key
// material.
func (c *Client) ShareAccountKey(ctx context.Context, directoryURL string, keyPEM []byte) ([]byte, error) {
	if err := checkAccountArgs(directoryURL); err != nil {
		return nil, err
	}
	key := c.keys.account(directoryURL)
	if !isPrivateKeyPEM(keyPEM) {
		return nil, fmt.Errorf("fleet: share %s: the account key given is not a PEM private key; nothing written", key)
	}
	value := encode(accountRecord{
		V: recordVersion, DirectoryURL: directoryURL, Node: c.node, Created: c.now().UTC(),
		Key: c.sealer.seal(keyPEM, key, directoryURL, accountField),
	})
	if err := checkSize(key, value, MaxStateSize); err != nil {
		return nil, err
	}
	var resp *clientv3.TxnResponse
	err := c.call(ctx, "share "+key, func(ctx context.Context) error {
		var err error
		resp, err = c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, value)).
			Else(clientv3.OpGet(key)).Commit()
		return err
	})
	if err != nil {
		return nil, err
	}
	if resp.Succeeded {
		return bytes.Clone(keyPEM), nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		// Deleted between the comparison and the read: impossible in one
		// transaction, but never report a key that is not there.
		return nil, recordErr(key, "the account key vanished during the transaction")
	}
	return c.decodeAccount(key, directoryURL, kvs[0].Value)
}

// ReadAccountKey returns the fleet's ACME account key for the CA at
// directoryURL, as [Client.ShareAccountKey] stored it, without writing:
// what a status or dry run compares with the local key. No key shared yet
// is an error matching [fs.ErrNotExist]; the other errors are
// ShareAccountKey's.
func (c *Client) ReadAccountKey(ctx context.Context, directoryURL string) ([]byte, error) {
	if err := checkAccountArgs(directoryURL); err != nil {
		return nil, err
	}
	key := c.keys.account(directoryURL)
	v, err := c.getOne(ctx, key, "no account key shared yet")
	if err != nil {
		return nil, err
	}
	return c.decodeAccount(key, directoryURL, v)
}

// decodeAccount decodes and unseals the account record stored under key.
func (c *Client) decodeAccount(key, directoryURL string, value []byte) ([]byte, error) {
	var rec accountRecord
	if err := decode(key, value, MaxStateSize, &rec); err != nil {
		return nil, err
	}
	if rec.DirectoryURL != directoryURL {
		return nil, recordErr(key, "account key of the CA at %q, stored for %q", rec.DirectoryURL, directoryURL)
	}
	keyPEM, err := c.sealer.unseal(rec.Key, key, directoryURL, accountField)
	if err != nil {
		return nil, err
	}
	if !isPrivateKeyPEM(keyPEM) {
		clear(keyPEM)
		return nil, recordErr(key, "the sealed account key is not a PEM private key")
	}
	return keyPEM, nil
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
