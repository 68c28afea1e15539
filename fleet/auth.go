package fleet

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
)

// envelope is the stored form of every record but lock values: the record
// itself (Rec, whose exact bytes are authenticated) with the id of the seal
// key that authenticated it and the MAC, hex (see [Sealer]). It is written
// in one canonical layout, {"v":2,"kid":"…","mac":"…","rec":…}, which
// unwrap reads by position (a JSON decode of every record's envelope cost
// three times the CPU of a nothing-due read); any other layout of the same
// JSON is read by a strict decode.
type envelope struct {
	V     int             `json:"v"`
	KeyID string          `json:"kid"`
	MAC   string          `json:"mac"`
	Rec   json.RawMessage `json:"rec"`
}

// The canonical layout's fixed parts.
const (
	envHead = `{"v":2,"kid":"`
	envMAC  = `","mac":"`
	envRec  = `","rec":`
)

// cutEnvelope reads value in the canonical layout; ok is false for any
// other.
func cutEnvelope(value []byte) (env envelope, ok bool) {
	rest, ok := bytes.CutPrefix(value, []byte(envHead))
	if !ok {
		return env, false
	}
	kid, rest, ok := bytes.Cut(rest, []byte(envMAC))
	if !ok || bytes.ContainsAny(kid, `"\`) {
		return env, false
	}
	mac, rest, ok := bytes.Cut(rest, []byte(envRec))
	if !ok || bytes.ContainsAny(mac, `"\`) || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return env, false
	}
	return envelope{V: recordVersion, KeyID: string(kid), MAC: string(mac), Rec: rest[:len(rest)-1]}, true
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
	body := encode(rec)
	kid, mac := c.sealer.sign(c.keys.root, kind, lineage, etcdKey, []byte(body))
	return envHead + kid + envMAC + hex.EncodeToString(mac) + envRec + body + "}"
}

// unwrap checks the value of etcdKey (at most max bytes, an envelope of this
// version whose MAC verifies for etcdKey, kind and lineage) and strictly
// decodes the record in it into rec. A legacy record's error matches
// errLegacy; every error is a [*RecordError] naming etcdKey.
func (c *Client) unwrap(etcdKey, kind, lineage string, value []byte, max int, rec any) error {
	if len(value) > max {
		return recordErr(etcdKey, "%d bytes, more than the limit of %d", len(value), max)
	}
	env, ok := cutEnvelope(value)
	if !ok {
		var err error
		if env, err = decodeEnvelope(etcdKey, value); err != nil {
			return err
		}
	}
	mac, err := hex.DecodeString(env.MAC)
	if err != nil {
		return recordErr(etcdKey, "%w: the MAC is not hex", errAuth)
	}
	if err := c.sealer.verify(env.KeyID, mac, c.keys.root, kind, lineage, etcdKey, env.Rec); err != nil {
		return err
	}
	return decode(etcdKey, env.Rec, max, rec)
}

// decodeEnvelope strictly decodes an envelope not in the canonical layout,
// saying what is wrong with it: not JSON, a legacy or unknown version,
// unknown fields, data after it.
func decodeEnvelope(etcdKey string, value []byte) (envelope, error) {
	var head struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(value, &head); err != nil {
		return envelope{}, recordErr(etcdKey, "not a JSON record: %w", err)
	}
	if head.V == legacyVersion {
		return envelope{}, &RecordError{Key: etcdKey, Err: errLegacy}
	} else if head.V != recordVersion {
		return envelope{}, recordErr(etcdKey, "record version %d, this program reads version %d only", head.V, recordVersion)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	err := dec.Decode(&env)
	if err == nil && len(bytes.TrimSpace(value[dec.InputOffset():])) > 0 {
		err = errors.New("data after the record")
	}
	if err != nil {
		return envelope{}, recordErr(etcdKey, "decode: %w", err)
	}
	return env, nil
}
