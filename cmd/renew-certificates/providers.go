package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
	"github.com/go-acme/lego/v5/providers/dns/route53"

	"github.com/renewkit/renewkit/renew"
)

// The DNS-01 providers of this build. lego's registry package
// (providers/dns) links about 230 provider SDKs, two of which the module
// proxy refuses, so each provider is imported on its own. Each reads
// lego's usual environment variables (and their _FILE variants) in
// NewDNSProvider; see https://go-acme.github.io/lego/dns/ for each one's.
//
// To add one: import github.com/go-acme/lego/v5/providers/dns/NAME, add it
// here, and `go get` it at lego's version.
func newProvider(name string) (challenge.Provider, error) {
	switch name {
	case "rfc2136", "dnsupdate":
		// RFC 2136 dynamic update (BIND, Knot, PowerDNS...):
		// RFC2136_NAMESERVER, RFC2136_TSIG_KEY, RFC2136_TSIG_SECRET,
		// RFC2136_TSIG_ALGORITHM, RFC2136_ZONES... (or DNSUPDATE_*).
		// Wrapped: refusals are explained, and it has a Preflight.
		return newRFC2136()
	case "exec":
		// A program of yours: EXEC_PATH, EXEC_MODE.
		return exec.NewDNSProvider()
	case "httpreq":
		// An HTTP endpoint of yours: HTTPREQ_ENDPOINT, HTTPREQ_MODE,
		// HTTPREQ_USERNAME, HTTPREQ_PASSWORD.
		return withAuthCheck(httpreq.NewDNSProvider())("httpreq", "env.HTTPREQ_USERNAME and env.HTTPREQ_PASSWORD")
	case "cloudflare":
		// CLOUDFLARE_DNS_API_TOKEN (and CLOUDFLARE_ZONE_API_TOKEN), or
		// CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY.
		return withAuthCheck(cloudflare.NewDNSProvider())("cloudflare", "env.CLOUDFLARE_DNS_API_TOKEN (a token with Zone.DNS edit on the zone), or env.CLOUDFLARE_EMAIL and env.CLOUDFLARE_API_KEY")
	case "digitalocean":
		// DO_AUTH_TOKEN.
		return withAuthCheck(digitalocean.NewDNSProvider())("digitalocean", "env.DO_AUTH_TOKEN (a token with write scope)")
	case "route53":
		// AWS's usual credential chain (AWS_ACCESS_KEY_ID,
		// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles...),
		// AWS_REGION, AWS_HOSTED_ZONE_ID.
		return withAuthCheck(route53.NewDNSProvider())("route53", "the AWS credentials (env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY or env.AWS_PROFILE) and their IAM permission on env.AWS_HOSTED_ZONE_ID")
	}
	return nil, fmt.Errorf("unknown DNS provider %q (this build has %v)", name, providerNames())
}

// withAuthCheck wraps an API provider so that a failure it reports as
// refused credentials (HTTP 401 or 403 in lego's error text, or an AWS
// authentication error code) is a *renew.LocalError naming fix, the keys
// to check. Used as withAuthCheck(pkg.NewDNSProvider())(name, fix).
func withAuthCheck[P challenge.Provider](p P, err error) func(name, fix string) (challenge.Provider, error) {
	return func(name, fix string) (challenge.Provider, error) {
		if err != nil {
			return nil, err
		}
		return &authChecked{p: p, name: name, fix: fix}, nil
	}
}

// authChecked is a provider whose credential refusals are local errors;
// it keeps the provider's Timeout. Safe for concurrent use if p is.
type authChecked struct {
	p    challenge.Provider
	name string
	fix  string
}

func (a *authChecked) Present(ctx context.Context, domain, token, keyAuth string) error {
	return a.check(a.p.Present(ctx, domain, token, keyAuth))
}

func (a *authChecked) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	return a.check(a.p.CleanUp(ctx, domain, token, keyAuth))
}

// Timeout is the provider's (zero when it has none: acmeissuer's defaults).
func (a *authChecked) Timeout() (timeout, interval time.Duration) {
	if pt, ok := a.p.(challenge.ProviderTimeout); ok {
		return pt.Timeout()
	}
	return 0, 0
}

// awsAuthCodes are the AWS API error codes of refused credentials.
var awsAuthCodes = []string{"AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
	"UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId"}

func (a *authChecked) check(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	refused := strings.Contains(msg, "[status code: 401]") || strings.Contains(msg, "[status code: 403]") ||
		strings.Contains(msg, "[status code 401]") || strings.Contains(msg, "[status code 403]") ||
		strings.Contains(msg, "(status code 401)") || strings.Contains(msg, "(status code 403)") // go-ovh
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) && slices.Contains(awsAuthCodes, coded.ErrorCode()) {
		refused = true
	}
	if !refused {
		return err
	}
	return &renew.LocalError{What: "dns-01 provider " + a.name, Err: fmt.Errorf("credentials refused: %w", err), Fix: "check " + a.fix}
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
	envMu.Lock()
	defer envMu.Unlock()
	old := make(map[string]savedVar, len(env))
	defer func() {
		for k, s := range old {
			if s.set {
				os.Setenv(k, s.val)
			} else {
				os.Unsetenv(k)
			}
		}
	}()
	for k, v := range env {
		prev, set := os.LookupEnv(k)
		old[k] = savedVar{prev, set}
		if err := os.Setenv(k, v); err != nil {
			return nil, fmt.Errorf("env %s: %w", k, err)
		}
	}
	return newProvider(name)
}
