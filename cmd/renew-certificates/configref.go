package main

import (
	"strings"
)

// The configuration reference, the one source of -help-config and
// CONFIG.md. configSample is a complete, valid configuration showing every
// key the parser accepts (TestConfigReferenceMatchesParser holds the two
// together); configNotes explains what a sample cannot.
const configSample = `server = "staging"                 # required: "staging" or "production" (Let's Encrypt),
                                   # or the https:// directory URL of any ACME CA
email = "admin@example.org"        # account contact (optional)
agree_tos = true                   # you agree to the CA's terms (needed to create the account)
root = "/var/lib/renewkit"         # storage root (default /var/lib/renewkit; absolute)
account_dir = "/var/lib/renewkit/.acme/x"  # default ROOT/.acme/HOST-HASH, one per CA (a service
                                   # embedding renewkit uses the same default: acmeissuer.DefaultAccountDir)
ca_file = "/etc/renewkit/ca.pem"   # extra PEM roots for the CA's TLS (a private CA)
keep = 3                           # generations kept per certificate (0: 3)
concurrency = 0                    # certificates renewed at once (0: 4 × CPUs)
lock_stuck_after = "2h"            # a lock held longer is a failure, lock_stuck (default: derived
                                   # from the retry policy and hook timeouts, about 1h45m)

[eab]                              # external account binding, if the CA requires one
key_id = "kid-1"
hmac_env = "RENEWKIT_EAB_HMAC"     # exactly one of: hmac = "...", hmac_file = "/path", hmac_env = "VAR"

[files]                            # modes and group of the lineage files (optional)
group = "ssl-cert"                 # group of every file (name or gid); keys then default to 0640
key_mode = "0640"                  # privkey.pem, combined.pem (default 0600)
cert_mode = "0644"                 # cert.pem, chain.pem, fullchain.pem (default 0644)
dir_mode = "0750"                  # directories (default 0755)

[retry]                            # in-run retries of a failing order (defaults shown)
retries = 3                        # 0: the default; negative: none
initial = "10s"                    # then × multiplier each time, ± jitter
multiplier = 3.0
max = "5m"
jitter = 0.2

[serve]                            # -serve only (defaults shown)
listen = "127.0.0.1:9750"          # /metrics, /healthz, /readyz; ":9750" for Kubernetes probes
grace = "15s"                      # how long a stop may take (2s to 10m)
ready_level = "warning"            # alert level that fails /readyz: notice, warning, urgent, critical, expired

[fleet]                            # fleet mode: several machines share these certificates through
                                   # etcd; one orders, every one installs (see the notes below)
endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"]
                                   # required: the client URLs of every etcd member
ca_file = "/etc/renewkit/etcd-ca.pem"    # CA of the etcd servers' certificates (default: the system's)
cert_file = "/etc/renewkit/etcd-node.pem"     # this node's etcd client certificate and key, for
key_file = "/etc/renewkit/etcd-node-key.pem"  # --client-cert-auth (both or neither; key mode 0600)
prefix = "/renewkit/"              # etcd key prefix of this fleet (default "/renewkit/")
seal_key_file = "/etc/renewkit/fleet-seal.key"  # required: 32 bytes or 64 hex digits, mode 0600, the
                                   # same file on every node; seals private keys before they reach etcd
old_seal_key_files = ["/etc/renewkit/fleet-seal-old.key"]  # unseal only, during a key rotation
node = "web-1"                     # this node's name in locks and records (default: the host name)
lock_ttl = "30s"                   # a dead holder's fleet lock expires after this (whole seconds)
request_timeout = "5s"             # bound of each etcd request (default 5s); then the run is deferred

[defaults]                         # any certificate key except name and domains
key_type = "ec256"
hooks = [["systemctl", "reload", "nginx"]]

[defaults.challenge]
type = "http-01"
webroot = "/var/www/html"

[[certificate]]
name = "example.org"               # lineage directory ROOT/NAME (default: the first domain)
domains = ["example.org", "www.example.org"]
key_type = "ec256"                 # ec256 (default), ec384, rsa2048, rsa3072, rsa4096
reuse_key = false                  # keep the private key across renewals
profile = "tlsserver"              # ACME profile (default: the CA's)
policy = "1/3"                     # renew when 1/3 of the lifetime is left (default);
                                   # also "25%", "0.25", "30d", "720h"; an ARI window from the CA wins
hooks = [["systemctl", "reload", "nginx"], ["/usr/local/bin/notify", "--quiet"]]
hook_timeout = "2m"                # per hook run (default 2m); durations: "90s", "10m", "1d"

[certificate.challenge]            # replaces [defaults.challenge] as a whole
type = "dns-01"                    # http-01, tls-alpn-01 or dns-01
provider = "cloudflare"            # see DNS providers below
env = { CLOUDFLARE_DNS_API_TOKEN_FILE = "/etc/renewkit/cloudflare-token" }
resolvers = ["1.1.1.1:53"]         # where the record is checked before validation
propagation_timeout = "2m"         # default: the provider's
propagation_delay = "0s"           # wait before the first check
skip_propagation_check = false

[[certificate]]
name = "mail"
domains = ["mail.example.org"]

[certificate.challenge]
type = "http-01"
listen = ":80"                     # a built-in server instead of a webroot
`

// configNotes follows the sample.
const configNotes = `The file is TOML, read strictly: an unknown key, a value of the wrong
type, a duplicate certificate name, an empty hook command and the like
are errors that name the file and line, and nothing runs (exit code 2).
Paths in the file must be absolute; paths given as flags (-root,
-account-dir, -ca-file) may be relative to the working directory.

A certificate inherits each of key_type, reuse_key, profile, policy,
hooks, hook_timeout and challenge from [defaults] unless it sets it;
hooks = [] disables inherited hooks.

Challenges:

  type = "http-01", webroot = "/var/www/html"
      files under WEBROOT/.well-known/acme-challenge/, served by your web
      server; that directory must be writable by the user renewkit runs as
  type = "http-01", listen = ":80"
      a built-in server on that address, bound only while a renewal runs;
      nothing else may listen there then (ports below 1024 need root or
      CAP_NET_BIND_SERVICE)
  type = "tls-alpn-01", listen = ":443"
      a built-in TLS-ALPN responder on that address (same rules)
  type = "dns-01", provider = "NAME"
      TXT records through a DNS provider; wildcards need this

Before any order, a run checks what it can locally (preflight): the
webroot's challenge directory is writable, the listen address can be
bound, each hook's program exists and is executable, the account
directory is writable, the DNS provider's credentials are present. A
problem fails the certificate at once, names the fix, and does not count
against the CA's backoff. -dry-run makes the same checks for every
selected certificate, contacting no CA.

After a failure at the CA, a certificate backs off (1 hour, doubling, at
most a day, or the CA's Retry-After) unless the configuration it failed
with changed since: fixing the configuration ends the backoff; so does
-force NAME.

Deploy hooks are argv lists run without a shell, after each new
certificate is in place, at least once per certificate even across
crashes (so they must be idempotent; a reload is). They get certbot's
RENEWED_LINEAGE and RENEWED_DOMAINS and renewkit's RENEWKIT_NAME,
RENEWKIT_GENERATION, RENEWKIT_SERIAL, RENEWKIT_NOT_AFTER and the paths
RENEWKIT_CERT, RENEWKIT_CHAIN, RENEWKIT_FULLCHAIN, RENEWKIT_KEY and
RENEWKIT_COMBINED, in a minimal environment (PATH, HOME, LANG, LC_ALL,
TZ). A hook that fails stays pending and is retried by every later run;
the run exits 1 until it succeeds.

DNS providers: every lego provider whose Go packages resolve, by lego's
code (provider = "ovh", "rfc2136", "route53"...); -version lists this build's, -help-dns NAME
prints one's variables and an example, DNS_PROVIDERS.md has them all.
Each is configured by lego's usual environment variables, taken from the
process environment (e.g. systemd's EnvironmentFile) and from the
challenge's env table, which is applied while the provider is built.
Required variables are checked when the configuration is loaded.
Secrets belong in files: lego reads VAR_FILE for VAR, e.g.
CLOUDFLARE_DNS_API_TOKEN_FILE; a secret written in the env table is
stored in the configuration file in clear.

Fleet mode ([fleet]): machines configured with the same endpoints, prefix
and seal key share each certificate: under a fleet-wide lock in etcd one
of them orders it, journals the order in etcd before finalizing it, and
publishes the certificate with its key (sealed with AES-256-GCM); every
node then installs that same generation into its own ROOT/NAME, with its
own swap and its own deploy hooks. The certificates must be configured
alike on every node (same name and domains). When etcd cannot be reached
(no endpoint answers, no quorum, request_timeout passes) a run changes
nothing, keeps serving what is installed, logs fault=fleet and exits 1
(outcome deferred); it never orders on its own. -no-fleet runs one
invocation as a single node anyway, for an etcd outage that outlasts the
certificate. -status shows the fleet's view beside the local one, -dry-run
also checks the seal key file and reads etcd once. A seal key file is
made with (umask 077; openssl rand -hex 32 > FILE) and copied to every
node; rotate it by making the new file seal_key_file and the old one
old_seal_key_files until the fleet has published a new generation.

Files: each certificate lives in ROOT/NAME: the stable links cert.pem,
chain.pem, fullchain.pem, privkey.pem and combined.pem (key and full
chain in one file) that web servers are configured with, resolving
through current to one complete generation; state.json (renewal state
and the deploy-hook journal); generations/; .lock. The ACME account is
in ROOT/.acme/HOST-HASH unless account_dir says otherwise.
`

// configReference is what -help-config prints.
func configReference() string {
	return "renew-certificates configuration reference (" + defaultConfigPath + " unless -config says otherwise)\n\n" +
		indentLines(configSample, "    ") + "\n" + notesText()
}

// configMarkdown is CONFIG.md: the same reference as Markdown.
func configMarkdown() string {
	return "# renew-certificates configuration reference\n\n" +
		"<!-- Generated from cmd/renew-certificates/configref.go; `go test ./cmd/renew-certificates -run TestConfigMarkdown -update` rewrites it. The binary prints the same text: `renew-certificates -help-config`. -->\n\n" +
		"The configuration file is `" + defaultConfigPath + "` unless `-config` says otherwise. Every key:\n\n" +
		"```toml\n" + configSample + "```\n\n" + indentLines(notesText(), "") + ""
}

func notesText() string {
	return configNotes
}

// indentLines prefixes every non-empty line of s.
func indentLines(s, prefix string) string {
	if prefix == "" {
		return s
	}
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			b.WriteString(prefix)
		}
		b.WriteString(l)
	}
	return b.String()
}
