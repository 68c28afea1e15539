package renew

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/hooks"
)

// Certificate describes one lineage: what to obtain and what to do once it is
// installed. The zero values of optional fields are documented defaults.
type Certificate struct {
	// Name is the lineage name and its directory under the Renewer's Root:
	// 1 to 64 characters of [A-Za-z0-9._-], not starting with a dot.
	// Required.
	Name string
	// Domains are the names the certificate covers, the first being the
	// primary one: DNS names or IP addresses, each as [ValidateDomain]
	// accepts it. Required; compared in [CanonicalName]'s form (case, a
	// trailing dot and IP address spelling do not count).
	Domains []string
	// KeyType is the private key type; the zero value means EC256.
	KeyType KeyType
	// ReuseKey keeps the installed private key across renewals when its type
	// matches KeyType. The default generates a fresh key per renewal.
	ReuseKey bool
	// Profile is the ACME profile to request; empty means the CA's default.
	Profile string
	// Policy decides when the certificate is due; nil means
	// expiry.DefaultPolicy() (one third of the lifetime remaining). An ARI
	// window offered by the CA overrides it.
	Policy expiry.Policy
	// Hooks run after each install, at least once per installed generation.
	// A hook with a Preflight(context.Context) error method (a
	// hooks.CommandHook: its program must exist and be executable) is
	// checked before every order; a failed check fails the run as a local
	// error, before the CA is asked for a certificate that could not be
	// deployed.
	Hooks []hooks.Hook
	// Force renews even when the certificate is not due and ignores the
	// cross-run backoff (a one-off, like the CLI's -force).
	Force bool
	// Fingerprint identifies the rest of the configuration that decides
	// whether an order can succeed and that the Renewer cannot see: the
	// CA, the account, how challenges are solved. Any string will do (a
	// hash, say); it is hashed with Domains, KeyType and Profile into
	// state.json when a run fails. The cross-run backoff holds back only
	// the configuration that failed: once any of these changed (someone
	// fixed the configuration), the next run orders at once. Empty is
	// valid: then a change of Domains, KeyType or Profile still counts.
	Fingerprint string
}

// configHash digests what decides whether an order can succeed, for the
// cross-run backoff (state.FailedConfig).
func (c *Certificate) configHash() string {
	h := sha256.New()
	for _, d := range normDomains(c.Domains) {
		h.Write([]byte(d + "\x00"))
	}
	fmt.Fprintf(h, "\x01%s\x01%s\x01%s", c.KeyType.orDefault(), c.Profile, c.Fingerprint)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// errInvalidCertificate reports a Certificate that cannot be run.
var errInvalidCertificate = errors.New("invalid certificate configuration")

func (c *Certificate) validate() error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	if len(c.Domains) == 0 {
		return fmt.Errorf("%w: %s: no domains", errInvalidCertificate, c.Name)
	}
	seen := make(map[string]bool, len(c.Domains))
	for _, d := range c.Domains {
		if err := ValidateDomain(d); err != nil {
			return fmt.Errorf("%w: %s: domain %q: %w", errInvalidCertificate, c.Name, d, err)
		}
		ld := CanonicalName(d)
		if seen[ld] {
			return fmt.Errorf("%w: %s: domain %q listed twice", errInvalidCertificate, c.Name, d)
		}
		seen[ld] = true
	}
	if err := c.KeyType.check(); err != nil {
		return fmt.Errorf("%w: %s: %w", errInvalidCertificate, c.Name, err)
	}
	names := map[string]bool{}
	for _, h := range c.Hooks {
		if h == nil {
			return fmt.Errorf("%w: %s: nil hook", errInvalidCertificate, c.Name)
		}
		if names[h.Name()] {
			return fmt.Errorf("%w: %s: two hooks named %q", errInvalidCertificate, c.Name, h.Name())
		}
		names[h.Name()] = true
	}
	return nil
}

// ValidateName reports whether name can be a lineage name.
func ValidateName(name string) error {
	if name == "" || len(name) > 64 || name[0] == '.' {
		return fmt.Errorf("%w: lineage name %q must be 1 to 64 characters and not start with a dot", errInvalidCertificate, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: lineage name %q may only contain letters, digits, '.', '_' and '-'", errInvalidCertificate, name)
		}
	}
	return nil
}

// ValidateDomain reports whether d can be a name in Certificate.Domains:
// a DNS name of letters, digits, '-' and '_' in labels of 1 to 63
// characters (internationalized names in their punycode form), at most
// 253 characters, optionally with a trailing dot; a wildcard only as the
// whole first label ("*.example.org"); or an IP address (RFC 8738), if the
// CA issues for those. It rejects, before any order, a name no CA would
// issue for. The error says what is wrong, without naming d.
func ValidateDomain(d string) error {
	s := strings.TrimSuffix(d, ".")
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > 253 {
		return errors.New("longer than 253 characters")
	}
	if net.ParseIP(s) != nil {
		return nil
	}
	labels := strings.Split(s, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 {
			return errors.New("each label must be 1 to 63 characters")
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				if r == '*' {
					return errors.New("a wildcard is allowed only as the whole first label (\"*.example.org\")")
				}
				return fmt.Errorf("invalid character %q (use the punycode form of internationalized names)", r)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("a label must not start or end with '-'")
		}
	}
	return nil
}

// normDomains returns the names in a canonical form, sorted, for
// comparison: lower case, no trailing dot (ACME identifiers have none, so a
// configured "example.com." is ordered, and issued, as "example.com"), and
// IP addresses in their canonical text form.
func normDomains(ds []string) []string {
	out := canonicalNames(ds)
	slices.Sort(out)
	return out
}

// canonicalNames returns the names in [CanonicalName]'s form, in the order
// given.
func canonicalNames(ds []string) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = CanonicalName(d)
	}
	return out
}

// CanonicalName returns a certificate name in the form a CA echoes it as an
// ACME identifier: lower case, no trailing dot, and an IP address in its
// canonical text form (RFC 8738 §3, RFC 5952: "::0001" is "::1",
// "::ffff:192.0.2.1" is "192.0.2.1"). An order for a non-canonical form
// fails when the CA answers with the canonical one.
func CanonicalName(d string) string {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if ip := net.ParseIP(d); ip != nil {
		d = ip.String()
	}
	return d
}

// leafNames returns the names a certificate covers, DNS names and IP
// addresses, in normDomains' form.
func leafNames(leaf *x509.Certificate) []string {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return normDomains(names)
}

// check reports whether k is one of the key types, or empty.
func (k KeyType) check() error {
	switch k.orDefault() {
	case EC256, EC384, RSA2048, RSA3072, RSA4096:
		return nil
	}
	return k.unknown()
}

func (k KeyType) orDefault() KeyType {
	if k == "" {
		return EC256
	}
	return k
}

// keyTypeOf names the type of a public key, or "" if it is none of ours.
func keyTypeOf(pub crypto.PublicKey) KeyType {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return EC256
		case elliptic.P384():
			return EC384
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	}
	return ""
}
