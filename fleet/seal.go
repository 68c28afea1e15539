package fleet

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/renewkit/renewkit/internal/safefile"
)

// SealKeySize is the size of a seal key: AES-256.
const SealKeySize = 32

// Sealer seals private keys before they are stored in etcd and unseals them
// when read back, with AES-256-GCM (Go's standard library, random 96-bit
// nonces: [cipher.NewGCMWithRandomNonce]). It is safe for concurrent use.
//
// Why AES-256-GCM and not ChaCha20-Poly1305: both are well-kept AEADs; AES-GCM
// is in the standard library (no dependency to keep current), is the FIPS
// 140-3 approved choice, and is hardware-accelerated on every server CPU a
// fleet runs on. Random nonces limit a key to about 2^32 seals, which a
// fleet's few renewals per lineage and month never approach.
//
// Every sealed value carries the id of its key (the first 8 bytes of
// SHA-256("renewkit fleet seal key id" || key), in hex: it reveals nothing
// usable about the key) and is bound, as associated data, to the etcd key it
// is stored under, its lineage and its field: a sealed key copied to another
// record, lineage or fleet prefix does not unseal.
//
// The same key authenticates every record as a whole: a record is stored
// with an HMAC-SHA256, under a key derived from the seal key, over its
// exact bytes and the format version, fleet prefix, record kind, lineage
// and etcd key it belongs to. Whoever can write to etcd without the seal
// key cannot change a byte of a record (a generation number, a
// certificate, a backoff date), nor move one to another key, lineage,
// kind or fleet, without every node refusing it.
type Sealer struct {
	primary sealKey
	all     map[string]sealKey // by id, primary included
}

type sealKey struct {
	id   string
	aead cipher.AEAD
	// mac is the record authentication key derived from the seal key
	// (HMAC-SHA256 keyed with it, over a fixed label): a key of its own,
	// so that no value is ever both an AES key and an HMAC key. macs
	// pools HMACs keyed with it (a Reset HMAC starts from its keyed
	// state: no key schedule per record).
	mac  []byte
	macs *sync.Pool
}

// sealed is a sealed value as stored in a record.
type sealed struct {
	KeyID string `json:"kid"`
	Data  []byte `json:"data"` // nonce || ciphertext || tag
}

// LoadSealer reads the seal key from keyFile, and keys that may only unseal
// (the previous keys of a rotation) from oldKeyFiles.
//
// A key file must be a regular file (not a symbolic link) owned by the user
// running the program and not readable or writable by group or others (mode
// 0600 or 0400). Its content is either exactly 32 bytes, or 64 hexadecimal
// digits optionally followed by one newline (what `openssl rand -hex 32`
// writes). Errors name the file, never its content.
func LoadSealer(keyFile string, oldKeyFiles ...string) (*Sealer, error) {
	s := &Sealer{all: make(map[string]sealKey)}
	for i, path := range append([]string{keyFile}, oldKeyFiles...) {
		raw, err := readSecretFile(path, 2*SealKeySize+2)
		if err != nil {
			return nil, fmt.Errorf("fleet: seal key: %w", err)
		}
		key, err := parseSealKey(raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("fleet: seal key %s: %w", path, err)
		}
		k, err := newSealKey(key)
		clear(key)
		if err != nil {
			return nil, fmt.Errorf("fleet: seal key %s: %w", path, err)
		}
		if _, dup := s.all[k.id]; dup {
			return nil, fmt.Errorf("fleet: seal key %s: same key as another seal key file (id %s)", path, k.id)
		}
		s.all[k.id] = k
		if i == 0 {
			s.primary = k
		}
	}
	return s, nil
}

// parseSealKey accepts 32 raw bytes or 64 hex digits with an optional newline.
func parseSealKey(raw []byte) ([]byte, error) {
	if len(raw) == SealKeySize {
		return bytes.Clone(raw), nil
	}
	text := bytes.TrimSuffix(raw, []byte("\n"))
	if len(text) == 2*SealKeySize {
		key := make([]byte, SealKeySize)
		if _, err := hex.Decode(key, text); err == nil {
			return key, nil
		}
	}
	return nil, fmt.Errorf("want exactly %d bytes or %d hex digits (and an optional newline), got %d bytes that are neither", SealKeySize, 2*SealKeySize, len(raw))
}

func newSealKey(key []byte) (sealKey, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return sealKey{}, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return sealKey{}, err
	}
	sum := sha256.Sum256(append([]byte("renewkit fleet seal key id"), key...))
	h := hmac.New(sha256.New, key)
	h.Write([]byte("renewkit fleet record authentication key v2"))
	macKey := h.Sum(nil)
	return sealKey{id: hex.EncodeToString(sum[:8]), aead: aead, mac: macKey,
		macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, macKey) }}}, nil
}

// recordMAC is HMAC-SHA256 under k's record key of a record's body and of
// where it belongs: the record format version, the fleet's key root
// (prefix), the record kind, the lineage (for an account record, the CA's
// directory URL) and the etcd key. Each part is length-prefixed, so no two
// different tuples authenticate the same bytes.
func recordMAC(k sealKey, root, kind, lineage, etcdKey string, body []byte) []byte {
	h := k.macs.Get().(hash.Hash)
	defer k.macs.Put(h)
	h.Reset()
	var n [binary.MaxVarintLen64]byte
	part := func(b []byte) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	part([]byte("renewkit fleet record"))
	part([]byte{recordVersion})
	part([]byte(root))
	part([]byte(kind))
	part([]byte(lineage))
	part([]byte(etcdKey))
	part(body)
	return h.Sum(nil)
}

// sign authenticates a record body with the primary key: its key id and MAC.
func (s *Sealer) sign(root, kind, lineage, etcdKey string, body []byte) (string, []byte) {
	return s.primary.id, recordMAC(s.primary, root, kind, lineage, etcdKey, body)
}

// errAuth is the cause of every record whose authentication fails.
var errAuth = errors.New("not authenticated")

// verify checks a record body's MAC made with the key kid (the primary key
// or an old one of a rotation).
func (s *Sealer) verify(kid string, mac []byte, root, kind, lineage, etcdKey string, body []byte) error {
	k, ok := s.all[kid]
	if !ok {
		return recordErr(etcdKey, "%w: signed with seal key id %q, which is not among this node's seal keys (have %s)", errAuth, kid, s.ids())
	}
	if !hmac.Equal(mac, recordMAC(k, root, kind, lineage, etcdKey, body)) {
		return recordErr(etcdKey, "%w: the record's MAC does not match (it was altered, forged without the seal key, or moved from another key, lineage, kind or fleet prefix)", errAuth)
	}
	return nil
}

// KeyID returns the id of the key that seals: what a rotation checks for.
func (s *Sealer) KeyID() string { return s.primary.id }

// associatedData binds a sealed value to where it is stored.
func associatedData(etcdKey, lineage, field string) []byte {
	return []byte("renewkit fleet v1\x00" + etcdKey + "\x00" + lineage + "\x00" + field)
}

func (s *Sealer) seal(plain []byte, etcdKey, lineage, field string) sealed {
	return sealed{
		KeyID: s.primary.id,
		Data:  s.primary.aead.Seal(nil, nil, plain, associatedData(etcdKey, lineage, field)),
	}
}

// errUnseal is the cause of every failure to unseal; its text has no key
// material in it.
var errUnseal = errors.New("cannot unseal")

func (s *Sealer) unseal(v sealed, etcdKey, lineage, field string) ([]byte, error) {
	k, ok := s.all[v.KeyID]
	if !ok {
		return nil, recordErr(etcdKey, "%s: %w: sealed with key id %q, which is not among this node's seal keys (have %s)", field, errUnseal, v.KeyID, s.ids())
	}
	plain, err := k.aead.Open(nil, nil, v.Data, associatedData(etcdKey, lineage, field))
	if err != nil {
		return nil, recordErr(etcdKey, "%s: %w with key id %s: authentication failed (the value was altered or sealed for another key, lineage or field)", field, errUnseal, v.KeyID)
	}
	return plain, nil
}

func (s *Sealer) ids() string {
	ids := s.primary.id
	for id := range s.all {
		if id != s.primary.id {
			ids += ", " + id + " (unseal only)"
		}
	}
	return ids
}

// readSecretFile reads a small secret file through safefile.ReadTrustedFile:
// no symbolic link, no FIFO or device (it could hang Dial), a regular file
// owned by this user with no group or other bits, read through max.
func readSecretFile(path string, max int64) ([]byte, error) {
	return safefile.ReadTrustedFile(path, max, 0o077)
}
