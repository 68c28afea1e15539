package main

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

	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/platform/env"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/miekg/dns"

	"github.com/renewkit/renewkit/renew"
)

// rfc2136Provider is lego's RFC 2136 (dnsupdate) provider with failures
// explained: when an update fails, one signed no-op update (the deletion of
// a TXT value that does not exist) asks the nameserver why, and a refusal
// that no retry can fix — a TSIG secret, key name or algorithm the server
// does not accept, a zone it will not update for this key, a zone it does
// not serve — comes back as a *renew.LocalError naming the env keys to fix.
// The same check is its Preflight, which needs no CA and changes no record.
//
// It keeps lego's provider (embedded) for everything else: Present replaces
// the record's whole TXT set, CleanUp removes only its own value, Timeout
// and Sequential as lego's. Safe for concurrent use once built.
type rfc2136Provider struct {
	*dnsupdate.DNSProvider
	cfg    *dnsupdate.Config // as NewDNSProviderConfig normalised it
	prefix string            // "RFC2136_" or "DNSUPDATE_": the env names the user set

	domains []string // of the certificates using it, for Preflight (set before use)
}

// newRFC2136 builds the provider from the process environment, as lego's
// dnsupdate.NewDNSProvider does (DNSUPDATE_* or RFC2136_*, each with its
// _FILE variant), keeping the configuration for the diagnosis.
func newRFC2136() (*rfc2136Provider, error) {
	prefix := "RFC2136_"
	if env.GetOrFile(dnsupdate.EnvNameserver) != "" {
		prefix = "DNSUPDATE_"
	}
	get := func(name string) string {
		return env.GetOneWithFallback(name, "", env.ParseString, strings.Replace(name, "DNSUPDATE_", "RFC2136_", 1))
	}
	cfg := dnsupdate.NewDefaultConfig()
	cfg.Nameserver = get(dnsupdate.EnvNameserver)
	if cfg.Nameserver == "" {
		return nil, fmt.Errorf("rfc2136: env.%sNAMESERVER is required (the primary nameserver, host or host:port)", prefix)
	}
	if z := get(dnsupdate.EnvZones); z != "" {
		cfg.Zones = strings.Split(z, ",")
	}
	cfg.TSIGFile = get(dnsupdate.EnvTSIGFile)
	cfg.TSIGKey = get(dnsupdate.EnvTSIGKey)
	cfg.TSIGSecret = get(dnsupdate.EnvTSIGSecret)
	for _, v := range []string{dnsupdate.EnvTSIGGSSRealm, dnsupdate.EnvTSIGGSSUsername, dnsupdate.EnvTSIGGSSPassword, dnsupdate.EnvTSIGGSSKeytabFile} {
		if get(v) != "" || env.GetOrFile(strings.Replace(v, "TSIG_GSS_", "RFC3645_", 1)) != "" {
			// GSS-TSIG is lego's own business; the diagnosis below
			// speaks plain TSIG only, so hand it over untouched.
			p, err := dnsupdate.NewDNSProvider()
			if err != nil {
				return nil, err
			}
			return &rfc2136Provider{DNSProvider: p, prefix: prefix}, nil
		}
	}
	p, err := dnsupdate.NewDNSProviderConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &rfc2136Provider{DNSProvider: p, cfg: cfg, prefix: prefix}, nil
}

// Present publishes the value; a failure the nameserver explains as a
// local problem is returned as a *renew.LocalError.
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
// err; it returns err itself when the answer points at nothing local.
func (p *rfc2136Provider) explain(ctx context.Context, domain, keyAuth string, err error) error {
	var ne net.Error
	if p.cfg == nil || errors.As(err, &ne) {
		return err // GSS-TSIG, or no answer at all: nothing to ask
	}
	fqdn := dns01.GetChallengeInfo(ctx, domain, keyAuth).EffectiveFQDN
	cctx, cancel := context.WithTimeout(ctx, p.cfg.DNSTimeout)
	defer cancel()
	if derr := p.check(cctx, fqdn); derr != nil {
		if le, ok := errors.AsType[*renew.LocalError](derr); ok {
			return &renew.LocalError{What: le.What, Err: fmt.Errorf("%w (the update said: %w)", le.Err, err), Fix: le.Fix}
		}
	}
	return err
}

// Preflight checks, for each record name of the certificates using the
// provider (or of each configured zone), that the nameserver accepts a
// signed update from this key: a deletion of a random TXT value that does
// not exist, which changes nothing. It is the preflight contract the CLI
// type-asserts on providers: interface{ Preflight(context.Context) error }.
func (p *rfc2136Provider) Preflight(ctx context.Context) error {
	if p.cfg == nil {
		return nil // GSS-TSIG: lego's business
	}
	var names []string
	for _, d := range p.domains {
		names = append(names, dns.Fqdn("_acme-challenge."+strings.TrimPrefix(strings.ToLower(d), "*.")))
	}
	if len(names) == 0 {
		for _, z := range p.cfg.Zones {
			names = append(names, dns.Fqdn("_acme-challenge."+z))
		}
	}
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		if err := p.check(ctx, n); err != nil {
			return err
		}
	}
	return nil
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
	key := p.prefix + "TSIG_KEY"
	secret := p.prefix + "TSIG_SECRET"
	alg := p.prefix + "TSIG_ALGORITHM"
	if p.cfg.TSIGFile != "" {
		key, secret, alg = p.prefix+"TSIG_FILE", p.prefix+"TSIG_FILE", p.prefix+"TSIG_FILE"
	}
	local := func(err error, fix string) error { return &renew.LocalError{What: what, Err: err, Fix: fix} }
	if t := reply.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
		switch t.Error {
		case dns.RcodeBadSig:
			return local(fmt.Errorf("TSIG key %s: the nameserver says the signature is wrong (BADSIG): wrong secret", p.cfg.TSIGKey),
				fmt.Sprintf("set env.%s to the secret of key %s in the nameserver's configuration", secret, p.cfg.TSIGKey))
		case dns.RcodeBadKey:
			return local(fmt.Errorf("TSIG key %s (%s): the nameserver does not know this key with this algorithm (BADKEY)", p.cfg.TSIGKey, strings.TrimSuffix(p.cfg.TSIGAlgorithm, ".")),
				fmt.Sprintf("set env.%s and env.%s to a key name and algorithm the nameserver has", key, alg))
		case dns.RcodeBadTime:
			return local(fmt.Errorf("TSIG key %s: the nameserver says this machine's clock is off (BADTIME)", p.cfg.TSIGKey),
				"synchronise this machine's clock (NTP)")
		}
		return local(fmt.Errorf("TSIG key %s: the nameserver answered TSIG error %s", p.cfg.TSIGKey, dns.RcodeToString[int(t.Error)]),
			fmt.Sprintf("check env.%s, env.%s and env.%s", key, secret, alg))
	}
	switch reply.Rcode {
	case dns.RcodeSuccess:
		if xerr != nil {
			// Accepted, but the answer's signature does not verify.
			return local(fmt.Errorf("the answer's TSIG signature does not verify with key %s: %w", p.cfg.TSIGKey, xerr),
				fmt.Sprintf("check env.%s and env.%s", secret, alg))
		}
		return nil
	case dns.RcodeRefused:
		who := "unsigned updates"
		fix := fmt.Sprintf("set env.%s and env.%s to a key allowed to update %s", key, secret, zone)
		if signed {
			who = "updates signed with key " + p.cfg.TSIGKey
			fix = fmt.Sprintf("grant key %s updates of TXT records in zone %s (BIND: update-policy), or set env.%sZONES to a zone it may update", p.cfg.TSIGKey, zone, p.prefix)
		}
		return local(fmt.Errorf("the nameserver refuses %s of %s (REFUSED)", who, fqdn), fix)
	case dns.RcodeNotAuth:
		if signed && reply.IsTsig() == nil {
			// BIND says which TSIG check failed; a server that
			// answers NOTAUTH unsigned may mean either.
			return local(fmt.Errorf("the nameserver answered NOTAUTH without a TSIG record: it does not accept key %s (%s) or does not serve zone %s", p.cfg.TSIGKey, strings.TrimSuffix(p.cfg.TSIGAlgorithm, "."), zone),
				fmt.Sprintf("check env.%s, env.%s, env.%s and env.%sZONES", key, secret, alg, p.prefix))
		}
		return local(fmt.Errorf("the nameserver is not authoritative for zone %s (NOTAUTH)", zone),
			fmt.Sprintf("set env.%sNAMESERVER to the zone's primary, or env.%sZONES to the zone it serves", p.prefix, p.prefix))
	case dns.RcodeNotZone:
		return local(fmt.Errorf("%s is not in zone %s (NOTZONE)", fqdn, zone), fmt.Sprintf("check env.%sZONES", p.prefix))
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
		Fix: fmt.Sprintf("add its zone to env.%sZONES", p.prefix)}
}
