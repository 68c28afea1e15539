package renew

import "errors"

// ErrOrderGone reports that a journaled order can no longer produce a
// certificate (it is invalid, expired, or unknown to the CA).
var ErrOrderGone = errors.New("renew: journaled order can no longer be finalized")
