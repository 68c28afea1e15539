package fleet

import (
	"errors"
	"fmt"
)

// ErrUnavailable is matched (with [errors.Is]) by every error caused by etcd
// not answering in time: no endpoint reachable, no leader (the member we talk
// to is cut off from a quorum), or the per-call timeout ([Config.RequestTimeout])
// expired. It means "the fleet cannot be asked right now": a caller keeps
// serving what it has, defers renewal and says so; it never falls back to
// ordering on its own. A cancellation of the caller's own context is not
// ErrUnavailable: it is the context's error.
var ErrUnavailable = errors.New("fleet: etcd unavailable")

// ErrFenced is matched (with [errors.Is]) by the error of a write refused
// because the writer no longer holds the lineage's lock: its lease expired (the
// process was paused, partitioned or too slow to keep it alive) or it was
// unlocked, and possibly another node holds the lock now. Nothing was written.
// The caller must stop working on the lineage and must not retry the write.
var ErrFenced = errors.New("fleet: lock lost, write refused (fenced)")

// ErrRecord is matched (with [errors.Is]) by every error about the content of a
// record read from etcd: not valid JSON, an unknown version or field, too
// large, sealed with a key we do not have or for another etcd key, or for other
// names than the caller expects. The error is a [*RecordError] naming the key.
var ErrRecord = errors.New("fleet: bad record")

// RecordError reports a record in etcd that cannot be used. errors.Is(err,
// ErrRecord) is true for it; Err is the cause. Its message names the etcd key
// and never contains key material.
type RecordError struct {
	Key string // the etcd key
	Err error
}

// Error names the etcd key and the cause.
func (e *RecordError) Error() string { return "fleet: record " + e.Key + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *RecordError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrRecord].
func (e *RecordError) Is(target error) bool { return target == ErrRecord }

func recordErr(key string, format string, args ...any) error {
	return &RecordError{Key: key, Err: fmt.Errorf(format, args...)}
}
