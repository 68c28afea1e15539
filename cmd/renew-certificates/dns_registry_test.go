package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// clearProviderEnv unsets every variable of p (and its _FILE variant) for
// the test.
func clearProviderEnv(t *testing.T, p dnsProviderInfo) {
	t.Helper()
	var names []string
	for _, v := range slices.Concat(p.Credentials, p.Additional) {
		names = append(names, v.Name)
	}
	for _, g := range p.Required {
		names = append(names, g...)
	}
	for _, n := range names {
		for _, n := range []string{n, n + "_FILE"} {
			t.Setenv(n, "")
			os.Unsetenv(n)
		}
	}
}

// dummyValue is a plausible value for a variable, by its name: a loopback
// URL that refuses connections for addresses, a number for numbers.
func dummyValue(name string) string {
	switch {
	case strings.Contains(name, "URL") || strings.Contains(name, "ENDPOINT") || strings.HasSuffix(name, "_HOST") || strings.HasSuffix(name, "_SERVER"):
		return "http://127.0.0.1:1/"
	case strings.HasSuffix(name, "_ID") || strings.HasSuffix(name, "_PORT") || strings.Contains(name, "TTL"):
		return "1"
	}
	return "dummy"
}

// TestDNSRegistryFromMetadata runs over the generated registry (lego's
// metadata): every provider, given none of its variables, fails to build
// and the config-time check names what lego requires; given dummy values
// for its documented credentials, the config-time check passes and lego
// no longer reports missing credentials (it may refuse a dummy's format,
// or fail to reach an API: proxies point at a closed loopback port).
func TestDNSRegistryFromMetadata(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	n := 0
	for _, p := range dnsProviderTable() {
		if p.New == nil {
			continue // curated: providers.go, dns01_test.go
		}
		n++
		t.Run(p.Code, func(t *testing.T) {
			clearProviderEnv(t, p)
			if len(p.Credentials) == 0 && len(p.Required) == 0 {
				t.Skip("no credentials in lego's metadata")
			}
			_, err := withEnv(nil, p.New)
			missing := missingDNSVars(p, nil)
			switch {
			case p.RequiredKnown && len(p.Required) > 0:
				if len(missing) != len(p.Required) {
					t.Errorf("config check with nothing set: missing %v, want every one of %v", missing, p.Required)
				}
				if err == nil {
					t.Errorf("built with none of its required variables %v", p.Required)
				} else if !strings.Contains(err.Error(), p.Required[0][0]) {
					t.Errorf("lego's error %q does not name %s", err, p.Required[0][0])
				}
			case p.Code == "lightsail":
				// AWS's credential chain: nothing is required up front.
			default:
				if err == nil {
					t.Errorf("built with none of its variables %v", varNames(p.Credentials))
				}
			}
			env := map[string]string{}
			for _, v := range p.Credentials {
				env[v.Name] = dummyValue(v.Name)
			}
			for _, g := range p.Required {
				env[g[0]] = dummyValue(g[0])
			}
			if m := missingDNSVars(p, env); len(m) > 0 {
				t.Errorf("config check with every documented credential set: missing %v", m)
			}
			if _, err := withEnv(env, p.New); err != nil && strings.Contains(err.Error(), "information are missing") {
				t.Errorf("with its documented credentials set, lego still reports missing ones: %v", err)
			}
		})
	}
	if n < 200 {
		t.Errorf("%d generated providers, want every one that resolves (over 200)", n)
	}
}

// TestHelpDNS: -help-dns prints a provider's variables, what is required
// and an example; an unknown provider is a usage error listing the build's.
func TestHelpDNS(t *testing.T) {
	code, out, _ := runCLI(t, t.Context(), "-help-dns", "pdns")
	for _, want := range []string{`provider = "pdns"`, "Required: PDNS_API_KEY, PDNS_API_URL.", "PDNS_SERVER_NAME", "PDNS_API_KEY_FILE = ", "lego's example:"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
	code, _, errOut := runCLI(t, t.Context(), "-help-dns", "nosuchdns")
	if code != exitUsage || !strings.Contains(errOut, `unknown DNS provider "nosuchdns"`) || !strings.Contains(errOut, "dnsupdate (also rfc2136)") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	code, out, _ = runCLI(t, t.Context(), "-version")
	if code != exitOK || !strings.Contains(out, " DNS providers (lego ") || !strings.Contains(out, "ovh") {
		t.Errorf("-version: exit %d: %s", code, out)
	}
}
