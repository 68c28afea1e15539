package expiry

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// maxChainSize is the largest input ParseChain accepts: 1 MiB,
// far more than any real chain (a few kilobytes) and small enough to bound
// the memory and time a damaged or hostile file can cost.
const maxChainSize = 1 << 20

// Errors of ParseChain, wrapped so that tests can tell them
// apart; callers get messages that
// name the file and, where it applies, the certificate and byte offset.
var (
	// errNoCertificate: the input holds no PEM CERTIFICATE block (it is
	// empty, holds only other blocks such as a private key, or is not PEM).
	errNoCertificate = errors.New("no certificate")
	// errMalformed: a PEM block is truncated or damaged, or a CERTIFICATE
	// block does not hold a parsable X.509 certificate. The x509 error, when
	// there is one, is wrapped too.
	errMalformed = errors.New("malformed certificate data")
	// errTooLarge: the input exceeds maxChainSize.
	errTooLarge = errors.New("certificate data too large")
	// errChainOrder: an end-entity certificate appears after the first
	// position, so the first certificate is not the leaf (or the leaf is
	// repeated).
	errChainOrder = errors.New("leaf certificate is not first")
)

var pemBegin = []byte("-----BEGIN")

// ParseChain parses the PEM CERTIFICATE blocks of data, in order; the first
// is the leaf, the rest its chain. name (usually the file path) is used in
// errors only.
//
// Blocks of other types (a private key in combined.pem, parameters) and text
// outside blocks (openssl's human-readable dumps) are skipped. ParseChain
// rejects, with an error naming the file and the problem: input over
// 1 MiB; input with no certificate block, including empty and
// DER-encoded input; a truncated or damaged PEM block, or a certificate block
// whose content is not an X.509 certificate; an end-entity certificate after
// the first position. It never returns an empty slice with a nil error.
func ParseChain(name string, data []byte) ([]*x509.Certificate, error) {
	if len(data) > maxChainSize {
		return nil, fmt.Errorf("expiry: %s: %w: more than %d bytes", name, errTooLarge, maxChainSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("expiry: %s: %w: empty", name, errNoCertificate)
	}
	var (
		certs []*x509.Certificate
		other []string // types of skipped blocks, for the error message
		rest  = data
	)
	for {
		block, next := pem.Decode(rest)
		if block == nil {
			break
		}
		// pem.Decode silently skips a damaged block (no END line, bad
		// base64) and returns the next good one: a second BEGIN in what it
		// consumed means one was skipped.
		consumed := rest[:len(rest)-len(next)]
		start := len(data) - len(rest)
		first := bytes.Index(consumed, pemBegin)
		if bytes.Count(consumed, pemBegin) > 1 {
			return nil, fmt.Errorf("expiry: %s: %w: PEM block at byte %d is damaged or truncated",
				name, errMalformed, start+first)
		}
		at := start + first
		rest = next
		if block.Type != "CERTIFICATE" {
			if !slices.Contains(other, block.Type) {
				other = append(other, block.Type)
			}
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("expiry: %s: certificate %d (PEM block at byte %d): %w: %w",
				name, len(certs)+1, at, errMalformed, err)
		}
		certs = append(certs, c)
	}
	if i := bytes.Index(rest, pemBegin); i >= 0 {
		return nil, fmt.Errorf("expiry: %s: %w: PEM block at byte %d is damaged or truncated",
			name, errMalformed, len(data)-len(rest)+i)
	}
	if len(certs) == 0 {
		switch {
		case len(other) > 0:
			return nil, fmt.Errorf("expiry: %s: %w: only %s PEM blocks", name, errNoCertificate, strings.Join(other, ", "))
		case data[0] == 0x30: // an ASN.1 SEQUENCE: DER
			return nil, fmt.Errorf("expiry: %s: %w: no PEM data; it looks DER-encoded (convert with openssl x509 -inform der)",
				name, errNoCertificate)
		}
		return nil, fmt.Errorf("expiry: %s: %w: no PEM data", name, errNoCertificate)
	}
	for i, c := range certs[1:] {
		if c.BasicConstraintsValid && !c.IsCA {
			return nil, fmt.Errorf("expiry: %s: %w: certificate %d (%q) is an end-entity certificate; only the first may be",
				name, errChainOrder, i+2, c.Subject.String())
		}
	}
	return certs, nil
}
