package renew

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/internal/pubkey"
)

// errVerify reports a certificate that failed verification before install.
// Nothing is installed when it is returned.
var errVerify = errors.New("certificate failed verification")

// errNotYetValid marks a certificate that is fine but for a NotBefore more
// than clockSkew ahead of this machine's clock.
var errNotYetValid = errors.New("this machine's clock is behind the CA's (clock skew?)")

// verified is a certificate that passed verify: its parsed leaf and chain.
type verified struct {
	leaf  *x509.Certificate
	chain []*x509.Certificate
}

// verify checks an issued certificate before it may be installed:
//
//  1. the leaf parses, and is the first certificate of certPEM;
//  2. its public key is key's;
//  3. it covers exactly the requested names;
//  4. the chain builds: each certificate is signed by the next one, and, when
//     roots is non-nil, the chain verifies to one of them;
//  5. it is valid at now (allowing clockSkew before NotBefore).
func verify(name string, certPEM, chainPEM []byte, key crypto.Signer, domains []string, roots *x509.CertPool, now time.Time) (*verified, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", errVerify, name, fmt.Sprintf(format, args...))
	}
	// (1)
	leafs, err := expiry.ParseChain(name+" certificate", certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errVerify, err)
	}
	leaf := leafs[0]
	var chain []*x509.Certificate
	if len(leafs) > 1 {
		chain = leafs[1:] // a bundled certificate: the rest is chain
	}
	if len(bytes.TrimSpace(chainPEM)) > 0 {
		c, err := expiry.ParseChain(name+" chain", chainPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errVerify, err)
		}
		chain = append(chain, c...)
	}
	// (2)
	if !pubkey.Equal(key.Public(), leaf.PublicKey) {
		return nil, fail("the certificate's public key does not match the private key")
	}
	// (3)
	want, got := normDomains(domains), leafNames(leaf)
	if !slices.Equal(want, got) {
		return nil, fail("the certificate covers %v, want %v", got, want)
	}
	// (4)
	for i, c := range append([]*x509.Certificate{leaf}, chain...) {
		if i == len(chain) {
			break
		}
		if err := c.CheckSignatureFrom(chain[i]); err != nil {
			return nil, fail("certificate %d of the chain is not signed by the next: %v", i, err)
		}
	}
	if roots != nil {
		inter := x509.NewCertPool()
		for _, c := range chain {
			inter.AddCert(c)
		}
		// A CA whose clock is a little ahead issues certificates valid
		// from a moment from now; (5) allows clockSkew for that.
		at := now
		if at.Before(leaf.NotBefore) && !now.Add(clockSkew).Before(leaf.NotBefore) {
			at = leaf.NotBefore
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at}); err != nil {
			return nil, fail("the chain does not verify to a trusted root: %v", err)
		}
	}
	// (5)
	if now.Add(clockSkew).Before(leaf.NotBefore) {
		return nil, fmt.Errorf("%w: %s: not valid before %s: %w", errVerify, name, leaf.NotBefore.UTC().Format(time.RFC3339), errNotYetValid)
	}
	if !now.Before(leaf.NotAfter) {
		return nil, fail("expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &verified{leaf: leaf, chain: chain}, nil
}

// clockSkew is how far in the future a new certificate's NotBefore may lie.
const clockSkew = 5 * time.Minute

// encodeChain returns the PEM of certs.
func encodeChain(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}
