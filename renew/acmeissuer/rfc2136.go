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
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/platform/env"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/miekg/dns"

	"github.com/renewkit/renewkit/renew"
)

// NewRFC2136 returns a DNS-01 provider that publishes the challenge records
// by RFC 2136 dynamic update (BIND, Knot, PowerDNS...): lego's dnsupdate
// provider, with its failures explained. cfg is lego's configuration; nil
// reads it from the environment as dnsupdate.NewDNSProvider does
// (DNSUPDATE_* or RFC2136_*, each with a _FILE variant). Messages name
// the settings to fix as those variables, or as cfg's fields.
//
// When an update fails, one signed no-op update (the deletion of a TXT
// value that does not exist) asks the nameserver why; a refusal that no
// retry can fix — a TSIG secret, key name or algorithm the server does not
// accept, a name its update policy does not allow for this key, a zone it
// does not serve — comes back as a *renew.LocalError naming the settings
// to fix (and the server's own policy: BIND's update-policy, Knot's acl,
// PowerDNS's TSIG-ALLOW-DNSUPDATE). A nameserver that does not answer is
// not a local problem: the failure stays transient, is retried like any
// other, and its message names the server's address.
//
// The same check is the provider's preflight, which needs no CA and
// changes no record: PreflightNames(ctx, names) checks the record names of
// certificate names (what [Issuer.Preflight] calls, with the request's
// names), Preflight(ctx) those of the configured zones. A nameserver that
// does not answer passes the preflight (the order's own update then fails
// transiently and is retried). GSS-TSIG (Kerberos) is lego's business: it
// is used as is, without the diagnosis.
//
// Present replaces the record's whole TXT set, CleanUp removes only its
// own value, and Timeout and Sequential are lego's. Safe for concurrent
// use.
func NewRFC2136(cfg *dnsupdate.Config) (challenge.Provider, error) {
	if cfg != nil {
		c := *cfg
		c.Zones = slices.Clone(cfg.Zones) // lego sorts them in place
		p, err := dnsupdate.NewDNSProviderConfig(&c)
		if err != nil {
			return nil, fmt.Errorf("rfc2136: %w", err)
		}
		r := &rfc2136Provider{DNSProvider: p, setting: fieldName}
		if c.TSIGGSSRealm == "" {
			r.cfg = &c
		}
		return r, nil
	}
	prefix := "RFC2136_"
	if env.GetOrFile(dnsupdate.EnvNameserver) != "" {
		prefix = "DNSUPDATE_"
	}
	setting := func(s string) string { return prefix + s }
	get := func(name string) string {
		return env.GetOneWithFallback(name, "", env.ParseString, strings.Replace(name, "DNSUPDATE_", "RFC2136_", 1))
	}
	c := dnsupdate.NewDefaultConfig()
	c.Nameserver = get(dnsupdate.EnvNameserver)
	if c.Nameserver == "" {
		return nil, fmt.Errorf("rfc2136: %sNAMESERVER is required (the primary nameserver, host or host:port)", prefix)
	}
	if z := get(dnsupdate.EnvZones); z != "" {
		c.Zones = strings.Split(z, ",")
	}
	c.TSIGFile = get(dnsupdate.EnvTSIGFile)
	c.TSIGKey = get(dnsupdate.EnvTSIGKey)
	c.TSIGSecret = get(dnsupdate.EnvTSIGSecret)
	for _, v := range []string{dnsupdate.EnvTSIGGSSRealm, dnsupdate.EnvTSIGGSSUsername, dnsupdate.EnvTSIGGSSPassword, dnsupdate.EnvTSIGGSSKeytabFile} {
		if get(v) != "" || env.GetOrFile(strings.Replace(v, "TSIG_GSS_", "RFC3645_", 1)) != "" {
			// GSS-TSIG: lego reads its own variables; the diagnosis
			// below speaks plain TSIG only.
			p, err := dnsupdate.NewDNSProvider()
			if err != nil {
				return nil, err
			}
			return &rfc2136Provider{DNSProvider: p, setting: setting}, nil
		}
	}
	p, err := dnsupdate.NewDNSProviderConfig(c)
	if err != nil {
		return nil, err
	}
	return &rfc2136Provider{DNSProvider: p, cfg: c, setting: setting}, nil
}

// fieldName names a setting as dnsupdate.Config's field.
func fieldName(s string) string {
	return map[string]string{
		"NAMESERVER": "Nameserver", "ZONES": "Zones", "TSIG_FILE": "TSIGFile",
		"TSIG_KEY": "TSIGKey", "TSIG_SECRET": "TSIGSecret", "TSIG_ALGORITHM": "TSIGAlgorithm",
	}[s]
}

// rfc2136Provider is NewRFC2136's provider: lego's, embedded, with the
// diagnosis. Safe for concurrent use.
type rfc2136Provider struct {
	*dnsupdate.DNSProvider
	// cfg is the configuration as NewDNSProviderConfig normalised it; nil
	// for GSS-TSIG (no diagnosis).
	cfg *dnsupdate.Config
	// setting names a setting ("TSIG_SECRET") the way the user set it.
	setting func(string) string
}

// String names the provider in messages.
func (p *rfc2136Provider) String() string {
	if p.cfg == nil {
		return "rfc2136"
	}
	return "rfc2136 nameserver " + p.cfg.Nameserver
}

// Present publishes the value; a failure the nameserver explains as a
// local problem is returned as a *renew.LocalError, any other one names
// the nameserver.
func (p *rfc2136Provider) Present(ctx context.Context, domain, token, keyAuth string) error {
	err := p.DNSProvider.Present(ctx, domain, token, keyAuth)
	if err == nil || ctx.Err() != nil {
		return err
	}
	return p.explain(ctx, domain, keyAuth, err)
}

// CleanUp removes the value; failures are explained as in Present.
func (p *rfc2136Provider) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	err := p.DNSProvider.CleanUp(ctx, domain, token, keyAuth)
	if err == nil || ctx.Err() != nil {
		return err
	}
	return p.explain(ctx, domain, keyAuth, err)
}

// explain asks the nameserver why an update of domain's record failed with
// err; it returns err, naming the nameserver, when the answer points at
// nothing local.
func (p *rfc2136Provider) explain(ctx context.Context, domain, keyAuth string, err error) error {
	if p.cfg == nil {
		return err // GSS-TSIG: lego's business
	}
	if ne, ok := errors.AsType[net.Error](err); ok {
		return fmt.Errorf("%s did not answer the update: %w", p, ne)
	}
	fqdn := dns01.GetChallengeInfo(ctx, domain, keyAuth).EffectiveFQDN
	cctx, cancel := context.WithTimeout(ctx, p.cfg.DNSTimeout)
	defer cancel()
	if derr := p.check(cctx, fqdn); derr != nil {
		if le, ok := errors.AsType[*renew.LocalError](derr); ok {
			return &renew.LocalError{What: le.What, Err: fmt.Errorf("%w (the update said: %w)", le.Err, err), Fix: le.Fix}
		}
	}
	return fmt.Errorf("%s: %w", p, err)
}

// Preflight checks that the nameserver accepts a signed update of the
// challenge record of each configured zone (see NewRFC2136).
func (p *rfc2136Provider) Preflight(ctx context.Context) error {
	if p.cfg == nil {
		return nil
	}
	return p.PreflightNames(ctx, p.cfg.Zones)
}

// PreflightNames checks that the nameserver accepts a signed update of the
// challenge record of each of names (a certificate's names, wildcards
// included): a deletion of a random TXT value that does not exist, which
// changes nothing. A nameserver that does not answer passes (see
// NewRFC2136).
func (p *rfc2136Provider) PreflightNames(ctx context.Context, names []string) error {
	if p.cfg == nil {
		return nil // GSS-TSIG: lego's business
	}
	var fqdns []string
	for _, d := range names {
		fqdns = append(fqdns, dns.Fqdn("_acme-challenge."+strings.TrimPrefix(strings.ToLower(d), "*.")))
	}
	slices.Sort(fqdns)
	var errs []error
	for _, n := range slices.Compact(fqdns) {
		err := p.check(ctx, n)
		if errors.Is(err, renew.ErrLocal) || ctx.Err() != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// check sends the no-op update for fqdn and interprets the answer:
// nil when the nameserver accepts it, a *renew.LocalError for a refusal
// that configuration must fix, another error when the question could not
// be asked or answered (a nameserver down: passing, not local).
func (p *rfc2136Provider) check(ctx context.Context, fqdn string) error {
	ns := p.cfg.Nameserver
	what := fmt.Sprintf("rfc2136 nameserver %s", ns)
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
	c := &dns.Client{Timeout: p.cfg.DNSTimeout}
	signed := p.cfg.TSIGKey != "" && p.cfg.TSIGSecret != ""
	if signed {
		m.SetTsig(p.cfg.TSIGKey, p.cfg.TSIGAlgorithm, 300, time.Now().Unix())
		c.TsigSecret = map[string]string{p.cfg.TSIGKey: p.cfg.TSIGSecret}
	}
	reply, _, xerr := c.ExchangeContext(ctx, m, ns)
	if reply == nil {
		if xerr == nil {
			xerr = errors.New("no answer")
		}
		return fmt.Errorf("%s: update check: %w", what, xerr)
	}
	key, secret, alg := p.setting("TSIG_KEY"), p.setting("TSIG_SECRET"), p.setting("TSIG_ALGORITHM")
	if p.cfg.TSIGFile != "" {
		key, secret, alg = p.setting("TSIG_FILE"), p.setting("TSIG_FILE"), p.setting("TSIG_FILE")
	}
	zones := p.setting("ZONES")
	algName := strings.TrimSuffix(p.cfg.TSIGAlgorithm, ".")
	// policies names each server's way of allowing a key to update a name.
	policies := fmt.Sprintf("BIND: update-policy { grant %[1]s zonesub TXT; } in the zone; Knot: an acl with key %[1]s and action update, listed in the zone's acl; PowerDNS: the zone's TSIG-ALLOW-DNSUPDATE metadata naming %[1]s, and dnsupdate=yes", p.cfg.TSIGKey)
	local := func(err error, fix string) error { return &renew.LocalError{What: what, Err: err, Fix: fix} }
	if t := reply.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
		switch t.Error {
		case dns.RcodeBadSig:
			return local(fmt.Errorf("TSIG key %s: the nameserver says the signature is wrong (BADSIG): wrong secret", p.cfg.TSIGKey),
				fmt.Sprintf("set %s to the secret of key %s in the nameserver's configuration", secret, p.cfg.TSIGKey))
		case dns.RcodeBadKey:
			// BIND answers BADKEY for a key it does not know with this
			// algorithm; Knot answers it for any update its ACL
			// refuses, a known key included.
			return local(fmt.Errorf("TSIG key %s (%s): the nameserver refused the key (BADKEY): it does not know this key with this algorithm, or its update policy does not allow this key to update %s", p.cfg.TSIGKey, algName, fqdn),
				fmt.Sprintf("check %s and %s against a key the nameserver has, and that its policy allows the key to update TXT records of %s (%s)", key, alg, fqdn, policies))
		case dns.RcodeBadTime:
			return local(fmt.Errorf("TSIG key %s: the nameserver says this machine's clock is off (BADTIME)", p.cfg.TSIGKey),
				"synchronise this machine's clock (NTP)")
		}
		return local(fmt.Errorf("TSIG key %s: the nameserver answered TSIG error %s", p.cfg.TSIGKey, dns.RcodeToString[int(t.Error)]),
			fmt.Sprintf("check %s, %s and %s", key, secret, alg))
	}
	switch reply.Rcode {
	case dns.RcodeSuccess:
		if xerr != nil {
			// Accepted, but the answer's signature does not verify.
			return local(fmt.Errorf("the answer's TSIG signature does not verify with key %s: %w", p.cfg.TSIGKey, xerr),
				fmt.Sprintf("check %s and %s", secret, alg))
		}
		return nil
	case dns.RcodeRefused:
		if !signed {
			return local(fmt.Errorf("the nameserver refuses unsigned updates of %s (REFUSED)", fqdn),
				fmt.Sprintf("set %s and %s to a key allowed to update %s", key, secret, zone))
		}
		// PowerDNS answers a bare REFUSED for a key it does not know as
		// well as for a name the key may not update.
		return local(fmt.Errorf("the nameserver refuses updates of %s signed with key %s (REFUSED): the key is unknown there, or its update policy does not allow this name", fqdn, p.cfg.TSIGKey),
			fmt.Sprintf("check %s, %s and %s against the nameserver's key, and grant the key updates of TXT records in zone %s (%s), or set %s to a zone it may update", key, secret, alg, zone, policies, zones))
	case dns.RcodeNotAuth:
		if signed && reply.IsTsig() == nil {
			// BIND says which TSIG check failed; a server that
			// answers NOTAUTH unsigned may mean either.
			return local(fmt.Errorf("the nameserver answered NOTAUTH without a TSIG record: it does not accept key %s (%s) or does not serve zone %s", p.cfg.TSIGKey, algName, zone),
				fmt.Sprintf("check %s, %s, %s and %s", key, secret, alg, zones))
		}
		return local(fmt.Errorf("the nameserver is not authoritative for zone %s (NOTAUTH)", zone),
			fmt.Sprintf("set %s to the zone's primary, or %s to the zone it serves", p.setting("NAMESERVER"), zones))
	case dns.RcodeNotZone:
		return local(fmt.Errorf("%s is not in zone %s (NOTZONE)", fqdn, zone), fmt.Sprintf("check %s", zones))
	}
	return fmt.Errorf("%s: update check for %s: the nameserver answered %s", what, fqdn, dns.RcodeToString[reply.Rcode])
}

// findZone is the zone lego's provider would update for fqdn: the longest
// configured zone that contains it, else the one whose SOA the nameserver
// names.
func (p *rfc2136Provider) findZone(ctx context.Context, fqdn string) (string, error) {
	if len(p.cfg.Zones) == 0 {
		z, err := dns01.DefaultClient().FindZoneByFqdnCustom(ctx, fqdn, []string{p.cfg.Nameserver})
		if err != nil {
			return "", fmt.Errorf("rfc2136 nameserver %s: find the zone of %s: %w", p.cfg.Nameserver, fqdn, err)
		}
		return z, nil
	}
	for _, z := range p.cfg.Zones { // sorted longest first by lego
		z = dns.Fqdn(strings.ToLower(z))
		if fqdn == z || strings.HasSuffix(strings.ToLower(fqdn), "."+z) {
			return z, nil
		}
	}
	return "", &renew.LocalError{What: "rfc2136 zones " + strings.Join(p.cfg.Zones, ","), Err: fmt.Errorf("no zone contains %s", fqdn),
		Fix: fmt.Sprintf("add its zone to %s", p.setting("ZONES"))}
}
