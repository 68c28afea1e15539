package main

import (
	"fmt"
	"sync"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
	"github.com/go-acme/lego/v5/providers/dns/route53"
)

// The DNS-01 providers of this build. lego's registry package
// (providers/dns) links about 230 provider SDKs, two of which the module
// proxy refuses, so each provider is imported on its own. Each reads
// lego's usual environment variables (and their _FILE variants) in
// NewDNSProvider; see https://go-acme.github.io/lego/dns/ for each one's.
// rfc2136 is acmeissuer.RFC2136 (newRFC2136).
//
// To add one: import github.com/go-acme/lego/v5/providers/dns/NAME, add it
// here and to credentialsFix, and `go get` it at lego's version.
func newProvider(name string) (challenge.Provider, error) {
	switch name {
	case "rfc2136", "dnsupdate":
		// RFC 2136 dynamic update (BIND, Knot, PowerDNS...):
		// RFC2136_NAMESERVER, RFC2136_TSIG_KEY, RFC2136_TSIG_SECRET,
		// RFC2136_TSIG_ALGORITHM, RFC2136_ZONES... (or DNSUPDATE_*).
		return newRFC2136()
	case "exec":
		// A program of yours: EXEC_PATH, EXEC_MODE.
		return exec.NewDNSProvider()
	case "httpreq":
		// An HTTP endpoint of yours: HTTPREQ_ENDPOINT, HTTPREQ_MODE,
		// HTTPREQ_USERNAME, HTTPREQ_PASSWORD.
		return httpreq.NewDNSProvider()
	case "cloudflare":
		// CLOUDFLARE_DNS_API_TOKEN (and CLOUDFLARE_ZONE_API_TOKEN), or
		// CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY.
		return cloudflare.NewDNSProvider()
	case "digitalocean":
		// DO_AUTH_TOKEN.
		return digitalocean.NewDNSProvider()
	case "route53":
		// AWS's usual credential chain (AWS_ACCESS_KEY_ID,
		// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles...),
		// AWS_REGION, AWS_HOSTED_ZONE_ID.
		return route53.NewDNSProvider()
	}
	return nil, fmt.Errorf("unknown DNS provider %q (this build has %v)", name, providerNames())
}

// credentialsFix is, by provider, what to check when its API refuses the
// credentials (acmeissuer.DNS01.CredentialsFix: acmeissuer recognises the
// refusal and makes it a local failure).
var credentialsFix = map[string]string{
	"httpreq":      "check env.HTTPREQ_USERNAME and env.HTTPREQ_PASSWORD",
	"cloudflare":   "check env.CLOUDFLARE_DNS_API_TOKEN (a token with Zone.DNS edit on the zone), or env.CLOUDFLARE_EMAIL and env.CLOUDFLARE_API_KEY",
	"digitalocean": "check env.DO_AUTH_TOKEN (a token with write scope)",
	"route53":      "check the AWS credentials (env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY or env.AWS_PROFILE) and their IAM permission on env.AWS_HOSTED_ZONE_ID",
}

// providerNames lists the DNS providers of this build for messages, with
// their aliases (dnsregistry.go).
func providerNames() []string { return dnsProviderList() }

func knownProvider(name string) bool { _, ok := lookupDNSProvider(name); return ok }

// envMu serialises changes to the process environment made by withEnv.
// lego's providers read their settings from the environment only, so a
// challenge's env table is applied around the provider's construction.
var envMu sync.Mutex

// savedVar is an environment variable's value before withEnv changed it.
type savedVar struct {
	val string
	set bool
}

// providerWithEnv builds the provider name with env set in the process
// environment during construction (lego providers read their settings
// then), restoring the environment afterwards.
func providerWithEnv(name string, env map[string]string) (challenge.Provider, error) {
	return withEnv(env, func() (challenge.Provider, error) { return newProvider(name) })
}
