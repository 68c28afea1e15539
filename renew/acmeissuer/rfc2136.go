package acmeissuer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/miekg/dns"

	"github.com/renewkit/renewkit/renew"
)

// RFC2136 is a DNS-01 provider (for DNS01.Provider) that publishes the
// challenge records by RFC 2136 dynamic update, signed with TSIG (HMAC),
// at a primary nameserver: BIND, Knot, PowerDNS... It speaks DNS itself
// (github.com/miekg/dns), the way lego's dnsupdate provider does: Present
// replaces the record's whole TXT set, CleanUp removes only its own value.
// The record updated is _acme-challenge.NAME itself (a CNAME there is not
// followed). GSS-TSIG (Kerberos) is not supported here: use lego's
// dnsupdate provider for it.
//
// When an update fails, one signed no-op update (the deletion of a TXT
// value that does not exist) asks the nameserver why; a refusal that no
// retry can fix — a TSIG secret, key name or algorithm the server does not
// accept, a name its update policy does not allow for this key, a zone it
// does not serve — comes back as a *renew.LocalError naming the settings
// to fix and the server's own policy (BIND's update-policy, Knot's acl,
// PowerDNS's TSIG-ALLOW-DNSUPDATE). A nameserver that does not answer is
// not a local problem: the failure stays transient, is retried like any
// other, and its message names the server's address.
//
// The same check is its preflight, which needs no CA and changes no
// record: [Issuer.Preflight] checks the record names of the request's
// names (PreflightNames), [Config.Preflight] those of Zones (Preflight). A
// nameserver that does not answer passes the preflight (the order's own
// update then fails transiently and is retried).
//
// Fill the fields before first use and do not change them afterwards;
// [New] checks them (errors name the field as DNS01.Provider.FIELD). Safe
// for concurrent use.
type RFC2136 struct {
	// Nameserver is the primary nameserver, "host:port" or "host" (port
	// 53). Required.
	Nameserver string
	// Zones are the zones the names are in ("example.org"); a name is
	// updated in the longest one that contains it. Empty means the zone
	// the nameserver's SOA answer names.
	Zones []string
	// TSIGKey, TSIGSecret (base64) and TSIGAlgorithm ("hmac-sha256";
	// hmac-sha1, -sha224, -sha256, -sha384 and -sha512 are known) sign the
	// updates. Empty key and secret mean unsigned updates; an empty
	// algorithm means hmac-sha256.
	TSIGKey, TSIGSecret, TSIGAlgorithm string
	// TTL of the records. Zero means 120 s.
	TTL time.Duration
	// DNSTimeout bounds one exchange with the nameserver. Zero means 10 s.
	DNSTimeout time.Duration
	// SequenceInterval is the wait between two values presented one after
	// the other under one record name (a wildcard and its base name share
	// one, and Present replaces the set): long enough for the CA to have
	// validated the first. Zero means 60 s.
	SequenceInterval time.Duration
	// PropagationTimeout and PollingInterval are this provider's defaults
	// for the DNS01 fields of the same meaning (see DNS01). Zero means
	// DNS01's defaults.
	PropagationTimeout, PollingInterval time.Duration
	// Setting names a field in the fixes the messages give (a CLI that
	// reads the fields from its own keys maps "TSIGSecret" to its key).
	// Nil means the field's name.
	Setting func(field string) string
}

// The interfaces the Issuer uses of a DNS provider.
var (
	_ challenge.Provider        = (*RFC2136)(nil)
	_ challenge.ProviderTimeout = (*RFC2136)(nil)
	_ preflighter               = (*RFC2136)(nil)
	_ namesPreflighter          = (*RFC2136)(nil)
)

// tsigAlgorithms are the TSIG algorithms RFC2136 signs with.
var tsigAlgorithms = []string{dns.HmacSHA1, dns.HmacSHA224, dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512}

// check validates the fields; errors are *renew.ConfigError values naming
// the field under prefix.
func (p *RFC2136) check(prefix string) error {
	bad := func(field, format string, args ...any) error {
		return &renew.ConfigError{Field: prefix + field, Err: fmt.Errorf(format, args...)}
	}
	if p.Nameserver == "" {
		return bad("Nameserver", "required (the primary nameserver, host or host:port)")
	}
	if (p.TSIGKey == "") != (p.TSIGSecret == "") {
		return bad("TSIGSecret", "set TSIGKey and TSIGSecret together, or neither for unsigned updates")
	}
	if p.TSIGAlgorithm != "" && !slices.Contains(tsigAlgorithms, dns.Fqdn(strings.ToLower(p.TSIGAlgorithm))) {
		return bad("TSIGAlgorithm", "%q is not one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512", p.TSIGAlgorithm)
	}
	if p.TTL < 0 || p.DNSTimeout < 0 || p.SequenceInterval < 0 || p.PropagationTimeout < 0 || p.PollingInterval < 0 {
		return bad("DNSTimeout", "negative duration (TTL, DNSTimeout, SequenceInterval, PropagationTimeout or PollingInterval)")
	}
	return nil
}

func (p *RFC2136) nameserver() string {
	if _, _, err := net.SplitHostPort(p.Nameserver); err != nil {
		return net.JoinHostPort(strings.Trim(p.Nameserver, "[]"), "53")
	}
	return p.Nameserver
}

func (p *RFC2136) algorithm() string {
	if p.TSIGAlgorithm == "" {
		return dns.HmacSHA256
	}
	return dns.Fqdn(strings.ToLower(p.TSIGAlgorithm))
}

func (p *RFC2136) timeout() time.Duration {
	if p.DNSTimeout > 0 {
		return p.DNSTimeout
	}
	return 10 * time.Second
}

func (p *RFC2136) setting(field string) string {
	if p.Setting != nil {
		if s := p.Setting(field); s != "" {
			return s
		}
	}
	return field
}

func (p *RFC2136) signed() bool { return p.TSIGKey != "" && p.TSIGSecret != "" }

// exchange sends m, signed when a key is set, to the nameserver.
func (p *RFC2136) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Timeout: p.timeout()}
	if p.signed() {
		key := dns.Fqdn(p.TSIGKey)
		m.SetTsig(key, p.algorithm(), 300, time.Now().Unix())
		c.TsigSecret = map[string]string{key: p.TSIGSecret}
	}
	reply, _, err := c.ExchangeContext(ctx, m, p.nameserver())
	return reply, err
}

// Timeout is the provider's propagation timeout and interval (see
// challenge.ProviderTimeout).
func (p *RFC2136) Timeout() (timeout, interval time.Duration) {
	return p.PropagationTimeout, p.PollingInterval
}

// Sequential is the wait between two values of one record name (see
// SequenceInterval).
func (p *RFC2136) Sequential() time.Duration {
	if p.SequenceInterval > 0 {
		return p.SequenceInterval
	}
	return 60 * time.Second
}

// String names the provider in messages.
func (p *RFC2136) String() string { return "rfc2136 nameserver " + p.nameserver() }

// Present publishes the challenge value of domain, replacing the record's
// TXT set; a failure the nameserver explains as a local problem is
// returned as a *renew.LocalError, any other one names the nameserver.
func (p *RFC2136) Present(ctx context.Context, domain, token, keyAuth string) error {
	return p.change(ctx, domain, keyAuth, true)
}

// CleanUp removes the challenge value of domain (only it); failures are
// explained as in Present.
func (p *RFC2136) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	return p.change(ctx, domain, keyAuth, false)
}

// change inserts (replacing the set) or removes the value of domain's
// challenge record.
func (p *RFC2136) change(ctx context.Context, domain, keyAuth string, insert bool) error {
	fqdn, value := dns01Record(domain, keyAuth)
	zone, err := p.findZone(ctx, fqdn)
	if err != nil {
		return err
	}
	ttl := p.TTL
	if ttl <= 0 {
		ttl = 120 * time.Second
	}
	rrs := []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: fqdn, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: uint32(ttl / time.Second)},
		Txt: []string{value},
	}}
	m := new(dns.Msg).SetUpdate(zone)
	action := "remove"
	if insert {
		action = "insert"
		m.RemoveRRset(rrs)
		m.Insert(rrs)
	} else {
		m.Remove(rrs)
	}
	reply, err := p.exchange(ctx, m)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case reply == nil:
		if err == nil {
			err = errors.New("no answer")
		}
		return fmt.Errorf("%s did not answer the update (%s %s in zone %s): %w", p, action, fqdn, zone, err)
	case reply.Rcode == dns.RcodeSuccess && err == nil:
		return nil
	}
	uerr := fmt.Errorf("%s: update (%s %s in zone %s): the nameserver answered %s", p, action, fqdn, zone, dns.RcodeToString[reply.Rcode])
	if err != nil {
		uerr = fmt.Errorf("%s: update (%s %s in zone %s): %w", p, action, fqdn, zone, err)
	}
	cctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	if derr := p.diagnose(cctx, fqdn); derr != nil {
		if le, ok := errors.AsType[*renew.LocalError](derr); ok {
			return &renew.LocalError{What: le.What, Err: fmt.Errorf("%w (the update said: %w)", le.Err, uerr), Fix: le.Fix}
		}
	}
	return uerr
}

// Preflight checks that the nameserver accepts a signed update of the
// challenge record of each of Zones (see RFC2136).
func (p *RFC2136) Preflight(ctx context.Context) error {
	return p.PreflightNames(ctx, p.Zones)
}

// PreflightNames checks that the nameserver accepts a signed update of the
// challenge record of each of names (a certificate's names, wildcards
// included): a deletion of a random TXT value that does not exist, which
// changes nothing. A nameserver that does not answer passes (see RFC2136).
func (p *RFC2136) PreflightNames(ctx context.Context, names []string) error {
	var fqdns []string
	for _, d := range names {
		fqdns = append(fqdns, dns.Fqdn("_acme-challenge."+strings.TrimPrefix(strings.ToLower(d), "*.")))
	}
	slices.Sort(fqdns)
	var errs []error
	for _, n := range slices.Compact(fqdns) {
		err := p.diagnose(ctx, n)
		if errors.Is(err, renew.ErrLocal) || ctx.Err() != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// diagnose sends the no-op update for fqdn and interprets the answer:
// nil when the nameserver accepts it, a *renew.LocalError for a refusal
// that configuration must fix, another error when the question could not
// be asked or answered (a nameserver down: passing, not local).
func (p *RFC2136) diagnose(ctx context.Context, fqdn string) error {
	what := p.String()
	zone, err := p.findZone(ctx, fqdn)
	if err != nil {
		return err
	}
	what += ", zone " + zone
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	m := new(dns.Msg).SetUpdate(zone)
	m.Remove([]dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: fqdn, Rrtype: dns.TypeTXT, Class: dns.ClassINET},
		Txt: []string{"renewkit-preflight-" + hex.EncodeToString(nonce[:])},
	}})
	reply, xerr := p.exchange(ctx, m)
	if reply == nil {
		if xerr == nil {
			xerr = errors.New("no answer")
		}
		return fmt.Errorf("%s: update check: %w", what, xerr)
	}
	key, secret, alg, zones := p.setting("TSIGKey"), p.setting("TSIGSecret"), p.setting("TSIGAlgorithm"), p.setting("Zones")
	algName := strings.TrimSuffix(p.algorithm(), ".")
	// policies names each server's way of allowing a key to update a name.
	policies := fmt.Sprintf("BIND: update-policy { grant %[1]s zonesub TXT; } in the zone; Knot: an acl with key %[1]s and action update, listed in the zone's acl; PowerDNS: the zone's TSIG-ALLOW-DNSUPDATE metadata naming %[1]s, and dnsupdate=yes", p.TSIGKey)
	local := func(err error, fix string) error { return &renew.LocalError{What: what, Err: err, Fix: fix} }
	if t := reply.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
		switch t.Error {
		case dns.RcodeBadSig:
			return local(fmt.Errorf("TSIG key %s: the nameserver says the signature is wrong (BADSIG): wrong secret", p.TSIGKey),
				fmt.Sprintf("set %s to the secret of key %s in the nameserver's configuration", secret, p.TSIGKey))
		case dns.RcodeBadKey:
			// BIND answers BADKEY for a key it does not know with this
			// algorithm; Knot answers it for any update its ACL
			// refuses, a known key included.
			return local(fmt.Errorf("TSIG key %s (%s): the nameserver refused the key (BADKEY): it does not know this key with this algorithm, or its update policy does not allow this key to update %s", p.TSIGKey, algName, fqdn),
				fmt.Sprintf("check %s and %s against a key the nameserver has, and that its policy allows the key to update TXT records of %s (%s)", key, alg, fqdn, policies))
		case dns.RcodeBadTime:
			return local(fmt.Errorf("TSIG key %s: the nameserver says this machine's clock is off (BADTIME)", p.TSIGKey),
				"synchronise this machine's clock (NTP)")
		}
		return local(fmt.Errorf("TSIG key %s: the nameserver answered TSIG error %s", p.TSIGKey, dns.RcodeToString[int(t.Error)]),
			fmt.Sprintf("check %s, %s and %s", key, secret, alg))
	}
	switch reply.Rcode {
	case dns.RcodeSuccess:
		if xerr != nil {
			// Accepted, but the answer's signature does not verify.
			return local(fmt.Errorf("the answer's TSIG signature does not verify with key %s: %w", p.TSIGKey, xerr),
				fmt.Sprintf("check %s and %s", secret, alg))
		}
		return nil
	case dns.RcodeRefused:
		if !p.signed() {
			return local(fmt.Errorf("the nameserver refuses unsigned updates of %s (REFUSED)", fqdn),
				fmt.Sprintf("set %s and %s to a key allowed to update %s", key, secret, zone))
		}
		// PowerDNS answers a bare REFUSED for a key it does not know as
		// well as for a name the key may not update.
		return local(fmt.Errorf("the nameserver refuses updates of %s signed with key %s (REFUSED): the key is unknown there, or its update policy does not allow this name", fqdn, p.TSIGKey),
			fmt.Sprintf("check %s, %s and %s against the nameserver's key, and grant the key updates of TXT records in zone %s (%s), or set %s to a zone it may update", key, secret, alg, zone, policies, zones))
	case dns.RcodeNotAuth:
		if p.signed() && reply.IsTsig() == nil {
			// BIND says which TSIG check failed; a server that
			// answers NOTAUTH unsigned may mean either.
			return local(fmt.Errorf("the nameserver answered NOTAUTH without a TSIG record: it does not accept key %s (%s) or does not serve zone %s", p.TSIGKey, algName, zone),
				fmt.Sprintf("check %s, %s, %s and %s", key, secret, alg, zones))
		}
		return local(fmt.Errorf("the nameserver is not authoritative for zone %s (NOTAUTH)", zone),
			fmt.Sprintf("set %s to the zone's primary, or %s to the zone it serves", p.setting("Nameserver"), zones))
	case dns.RcodeNotZone:
		return local(fmt.Errorf("%s is not in zone %s (NOTZONE)", fqdn, zone), fmt.Sprintf("check %s", zones))
	}
	return fmt.Errorf("%s: update check for %s: the nameserver answered %s", what, fqdn, dns.RcodeToString[reply.Rcode])
}

// findZone is the zone to update for fqdn: the longest of Zones that
// contains it, else the zone whose SOA the nameserver names for it (in
// its answer at a zone's apex, in its authority section below).
func (p *RFC2136) findZone(ctx context.Context, fqdn string) (string, error) {
	lower := strings.ToLower(dns.Fqdn(fqdn))
	if len(p.Zones) > 0 {
		best := ""
		for _, z := range p.Zones {
			z = dns.Fqdn(strings.ToLower(z))
			if (lower == z || strings.HasSuffix(lower, "."+z)) && len(z) > len(best) {
				best = z
			}
		}
		if best == "" {
			return "", &renew.LocalError{What: "rfc2136 zones " + strings.Join(p.Zones, ","), Err: fmt.Errorf("no zone contains %s", fqdn),
				Fix: fmt.Sprintf("add its zone to %s", p.setting("Zones"))}
		}
		return best, nil
	}
	m := new(dns.Msg).SetQuestion(lower, dns.TypeSOA)
	c := &dns.Client{Timeout: p.timeout()}
	reply, _, err := c.ExchangeContext(ctx, m, p.nameserver())
	if err != nil {
		return "", fmt.Errorf("%s: find the zone of %s: %w", p, fqdn, err)
	}
	for _, rr := range slices.Concat(reply.Answer, reply.Ns) {
		if soa, ok := rr.(*dns.SOA); ok {
			return strings.ToLower(dns.Fqdn(soa.Hdr.Name)), nil
		}
	}
	return "", &renew.LocalError{What: p.String(), Err: fmt.Errorf("no SOA record for %s in its answer (%s): it serves no zone containing the name", fqdn, dns.RcodeToString[reply.Rcode]),
		Fix: fmt.Sprintf("set %s to the zone's primary, or %s to the zone", p.setting("Nameserver"), p.setting("Zones"))}
}
