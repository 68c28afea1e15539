package renew

import (
	"errors"

	"github.com/renewkit/renewkit/backoff"
)

// ErrOrderGone reports that a journaled order can no longer produce a
// certificate (it is invalid, expired, or unknown to the CA), or that it
// was never finalized and the Resumer has no key to finalize it with.
var ErrOrderGone = errors.New("renew: journaled order can no longer be finalized")

// errBackingOff is wrapped by the Err of a BackingOff Result: earlier runs
// failed and the persisted not-before time has not passed. The message says
// until when and the last error.
var errBackingOff = errors.New("backing off after earlier failures")

// ErrLocal marks a failure whose cause is on this machine (configuration,
// permissions, a busy port, a missing program, credentials refused by a DNS
// provider) rather than at the CA. errors.Is(err, ErrLocal) holds for any
// error that wraps a *LocalError. Retrying such a failure cannot help until
// someone changes something here, so it is never retried within a run
// (it is also backoff.ErrPermanent).
var ErrLocal = errors.New("local problem")

// LocalError is a failure caused by this machine's configuration or
// environment, not by the CA. What names the thing that is wrong (a path, a
// listen address, a configuration key); Fix, when known, says in one
// sentence how to put it right. Safe to copy; immutable once returned.
//
// A local failure found before anything reached the CA (the preflight, or
// an Issuer failing before it placed an order) is not counted against the
// CA's backoff: fixing it here is all it takes. One found after an order
// was placed (Ordered: a DNS provider refusing the credentials while the
// challenges are presented) is counted like any failure, since the CA saw
// the order; otherwise a local problem the preflight cannot see would place
// a new order every few minutes.
type LocalError struct {
	What    string // the thing at fault, e.g. "webroot /var/www/html"
	Err     error  // the underlying error
	Fix     string // how to fix it, or ""
	Ordered bool   // an order had been placed at the CA when it failed
}

func (e *LocalError) Error() string {
	msg := e.What
	if e.Err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += e.Err.Error()
	}
	if e.Fix != "" {
		msg += " (fix: " + e.Fix + ")"
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *LocalError) Unwrap() error { return e.Err }

// Is reports ErrLocal and backoff.ErrPermanent.
func (e *LocalError) Is(target error) bool {
	return target == ErrLocal || target == backoff.ErrPermanent
}

// ConfigError is a configuration value that cannot be used, in the style of
// *fs.PathError: Field names the value in the terms of the Go type that
// holds it, as a selector path ("Root", "HTTP01.Webroot",
// `Routes["www"].DNS01.Provider`), and Err says what is wrong with it.
// Configuration errors of renew and of its issuers carry one, so that a
// program with its own configuration format (a CLI reading TOML) maps
// Field to its own key with a table, never by parsing the message. Use
// errors.As to get it; the error that wraps it still matches the package's
// ErrConfig sentinel. Safe to copy; immutable once returned.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string {
	if e.Err == nil {
		return e.Field + ": invalid"
	}
	return e.Field + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }
