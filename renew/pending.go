package renew

import (
	"bytes"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// The order journal (invariant 4) is one file, the lineage's pending.key:
// the new private key followed by a PEM block holding the InFlight record.
// Key and order are therefore saved by one atomic, durable write (two
// fsyncs) before finalize, and can never be found one without the other.
// The file has the key's mode before its first byte.
const orderBlockType = "RENEWKIT ORDER"

// pendingOrder is an order past its point of no return and its key.
type pendingOrder struct {
	rec InFlight
	key crypto.Signer
	// in is the coordinator whose journal holds the order: localRun
	// (pending.key) or the fleetRun of fleet mode (the fleet's journal).
	in coordinator
}

// encodePending returns the content of pending.key.
func encodePending(keyPEM []byte, rec InFlight) ([]byte, error) {
	j, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(keyPEM)
	if err := pem.Encode(&b, &pem.Block{Type: orderBlockType, Bytes: j}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// errPendingCorrupt marks a pending.key that cannot be used.
var errPendingCorrupt = errors.New("unusable order journal")

// decodePending parses pending.key. Errors never include key material.
func decodePending(data []byte) (*pendingOrder, error) {
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w: no readable private key", errPendingCorrupt)
	}
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("%w: no order record", errPendingCorrupt)
		}
		if blk.Type != orderBlockType {
			continue
		}
		var rec InFlight
		if err := json.Unmarshal(blk.Bytes, &rec); err != nil || rec.OrderURL == "" {
			return nil, fmt.Errorf("%w: bad order record", errPendingCorrupt)
		}
		return &pendingOrder{rec: rec, key: key}, nil
	}
}
