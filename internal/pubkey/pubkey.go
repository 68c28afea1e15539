// Package pubkey compares public keys: the one place that decides whether a
// private key and a certificate, or two private keys, belong together.
package pubkey

import "crypto"

// Equal reports whether a and b are the same public key. Keys of the
// standard library's types (RSA, ECDSA, Ed25519) compare by value; a key of
// a type without an Equal method never equals anything.
func Equal(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}
