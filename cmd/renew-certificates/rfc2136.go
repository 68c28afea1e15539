package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/platform/env"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"

	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// newRFC2136 builds the rfc2136 provider from the process environment,
// with lego's variable names (DNSUPDATE_* or RFC2136_*, each with its
// _FILE variant): acmeissuer.RFC2136, which explains the nameserver's
// refusals naming the variables to fix (env.RFC2136_TSIG_SECRET...). lego
// reads and checks the settings (a TSIG key file included); GSS-TSIG is
// lego's own provider, used as is.
func newRFC2136() (challenge.Provider, error) {
	prefix := "RFC2136_"
	if env.GetOrFile(dnsupdate.EnvNameserver) != "" {
		prefix = "DNSUPDATE_"
	}
	get := func(name string) string {
		return env.GetOneWithFallback(name, "", env.ParseString, strings.Replace(name, "DNSUPDATE_", "RFC2136_", 1))
	}
	for _, v := range []string{dnsupdate.EnvTSIGGSSRealm, dnsupdate.EnvTSIGGSSUsername, dnsupdate.EnvTSIGGSSPassword, dnsupdate.EnvTSIGGSSKeytabFile} {
		if get(v) != "" || env.GetOrFile(strings.Replace(v, "TSIG_GSS_", "RFC3645_", 1)) != "" {
			return dnsupdate.NewDNSProvider()
		}
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
	// Checks and normalises cfg in place, reading a TSIG key file.
	if _, err := dnsupdate.NewDNSProviderConfig(cfg); err != nil {
		return nil, err
	}
	vars := map[string]string{
		"Nameserver": "NAMESERVER", "Zones": "ZONES",
		"TSIGKey": "TSIG_KEY", "TSIGSecret": "TSIG_SECRET", "TSIGAlgorithm": "TSIG_ALGORITHM",
	}
	return &acmeissuer.RFC2136{
		Nameserver:         cfg.Nameserver,
		Zones:              cfg.Zones,
		TSIGKey:            cfg.TSIGKey,
		TSIGSecret:         cfg.TSIGSecret,
		TSIGAlgorithm:      cfg.TSIGAlgorithm,
		TTL:                secondsOf(cfg.TTL),
		DNSTimeout:         cfg.DNSTimeout,
		SequenceInterval:   cfg.SequenceInterval,
		PropagationTimeout: cfg.PropagationTimeout,
		PollingInterval:    cfg.PollingInterval,
		Setting: func(field string) string {
			v, ok := vars[field]
			if !ok {
				return ""
			}
			if cfg.TSIGFile != "" && strings.HasPrefix(v, "TSIG_") {
				v = "TSIG_FILE" // the key, secret and algorithm come from it
			}
			return "env." + prefix + v
		},
	}, nil
}

// secondsOf is n seconds (lego's TTL is an int of seconds).
func secondsOf(n int) time.Duration { return time.Duration(n) * time.Second }
