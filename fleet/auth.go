package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
)

// envelope is the stored form of every record but lock values: the record
// itself (Rec, whose exact bytes are authenticated) with the id of the seal
// key that authenticated it and the MAC (see [Sealer]).
type envelope struct {
	V     int             `json:"v"`
	KeyID string          `json:"kid"`
	MAC   []byte          `json:"mac"`
	Rec   json.RawMessage `json:"rec"`
}

// Record kinds outside a lineage's state keys, bound into their MAC like
// the state kinds ([Kind]).
const (
	kindBundle  = "bundle"
	kindAccount = "account"
)

// errLegacy marks a record of the unauthenticated format of earlier
// releases (legacyVersion): readers treat it as absent, writers replace it.
var errLegacy = errors.New("unauthenticated record of format version 1, written before records were authenticated; read as absent, and replaced by the fleet's next write")

// wrap encodes rec, authenticated for the etcd key it is written under, its
// kind and lineage (for an account record: the CA's directory URL).
func (c *Client) wrap(etcdKey, kind, lineage string, rec any) string {
	body := []byte(encode(rec))
	kid, mac := c.sealer.sign(c.keys.root, kind, lineage, etcdKey, body)
	return encode(envelope{V: recordVersion, KeyID: kid, MAC: mac, Rec: body})
}

// unwrap checks the value of etcdKey (at most max bytes, an envelope of this
// version whose MAC verifies for etcdKey, kind and lineage) and strictly
// decodes the record in it into rec. A legacy record's error matches
// errLegacy; every error is a [*RecordError] naming etcdKey.
func (c *Client) unwrap(etcdKey, kind, lineage string, value []byte, max int, rec any) error {
	if len(value) > max {
		return recordErr(etcdKey, "%d bytes, more than the limit of %d", len(value), max)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	err := dec.Decode(&env)
	if err == nil && len(bytes.TrimSpace(value[dec.InputOffset():])) > 0 {
		err = errors.New("data after the record")
	}
	var head struct {
		V int `json:"v"`
	}
	if jerr := json.Unmarshal(value, &head); jerr != nil {
		return recordErr(etcdKey, "not a JSON record: %w", jerr)
	}
	if head.V == legacyVersion {
		return &RecordError{Key: etcdKey, Err: errLegacy}
	} else if head.V != recordVersion {
		return recordErr(etcdKey, "record version %d, this program reads version %d only", head.V, recordVersion)
	}
	if err != nil {
		return recordErr(etcdKey, "decode: %w", err)
	}
	if err := c.sealer.verify(env.KeyID, env.MAC, c.keys.root, kind, lineage, etcdKey, env.Rec); err != nil {
		return err
	}
	return decode(etcdKey, env.Rec, max, rec)
}
