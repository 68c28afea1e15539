// Command renew-certificates renews the TLS certificates listed in a
// configuration file: the one-shot program a systemd timer runs twice a day
// in place of a `certbot renew` wrapper, built on renewkit's crash-safe
// Renewer. Run it as often as you like: a certificate that is not due costs
// a few file reads, no lock and no write, and a request to the CA only when
// its ACME Renewal Information (ARI) window is due to be refreshed (every
// 6 hours).
//
// Try it first, with nothing installed and no network:
//
//	go run ./examples/renew-certificates -demo
//
// starts an ACME CA (Let's Encrypt's Pebble) inside the process, issues two
// certificates with real HTTP-01 validation over loopback into a new
// directory, runs a deploy hook, runs again to show that nothing happens
// when nothing is due, and prints the status table and where to look.
//
// # Usage
//
//	renew-certificates [-config FILE] [flags]      renew what is due
//	renew-certificates -dry-run [-force NAME|all]  say what a run would do; change nothing, contact no CA
//	renew-certificates -status                     print the status table
//	renew-certificates -demo [-root DIR]           the self-contained demo
//	renew-certificates -version
//
// Flags:
//
//	-config FILE         configuration file (default /etc/renewkit/config.toml)
//	-cert NAME[,NAME]    run (or show) only these certificates
//	-force NAME[,NAME]|all
//	                     renew these now even if not due, ignoring the backoff of earlier failures
//	-dry-run             decide and print, change nothing, contact no CA
//	-status              print the status table (from the files on disk; contacts no CA)
//	-metrics-file FILE   write node_exporter textfile metrics to FILE (atomically) at the end
//	-log-format text|json  text (default) for a terminal, json for journald and log shippers
//	-log-level LEVEL     debug, info (default), warn or error
//	-demo                run the demo (with -root DIR: in DIR, which must be empty)
//	-version             print the version and the DNS providers of this build
//
// These override the configuration file, for one-off use:
//
//	-server URL|staging|production   -email ADDRESS    -agree-tos
//	-root DIR      -account-dir DIR   -ca-file FILE     -keep N    -concurrency N
//
// Paths given as flags may be relative (to the working directory); paths in
// the file must be absolute.
//
// # Exit codes
//
// Stable; scripts and monitoring may rely on them.
//
//	0  every certificate is fine: renewed, recovered, not due, or locked
//	   by another run that is renewing it
//	1  at least one certificate failed, is backing off after earlier
//	   failures, or has deploy hooks that still fail; or the metrics file
//	   could not be written (-status, -dry-run: a lineage could not be read)
//	2  bad command line or configuration (including DNS provider
//	   credentials that are missing); nothing was done
//	3  interrupted by SIGTERM or SIGINT
//
// # Signals
//
// SIGTERM and SIGINT cancel the run: each certificate stops before its next
// irreversible step, running hooks are killed with their process group, and
// the program exits with code 3; a second signal kills it at once. Nothing
// is left half done: an order the CA may already be issuing is journaled,
// and the next run installs its certificate instead of ordering again.
// SIGKILL is survived too (that is renewkit's promise): the next run
// finishes or rolls back what the killed one began.
//
// # Logs
//
// Logs go to standard error: human-readable text by default, JSON with
// -log-format json. Each certificate ends with exactly one summary record
// (msg=certificate) carrying name, outcome, not_after, renew_at, reason,
// generation, failures, hooks_pending and the error, if any. The ACME
// client adds a few records of its own at Info (account created, order
// created, certificate issued). Standard output is used only by -status,
// -dry-run, -demo and -version.
//
// # Configuration
//
// TOML, read strictly: an unknown key, a value of the wrong type, a
// duplicate certificate name, an empty hook command and the like are
// errors that name the file and line, and nothing runs (exit code 2).
//
//	server = "staging"                 # required: "staging" or "production" (Let's Encrypt),
//	                                   # or the https:// directory URL of any ACME CA
//	email = "admin@example.org"        # account contact (optional)
//	agree_tos = true                   # you agree to the CA's terms (needed to create the account)
//	root = "/var/lib/renewkit"         # storage root (default /var/lib/renewkit; absolute)
//	account_dir = "/var/lib/renewkit/.acme/x"  # default ROOT/.acme/HOST-HASH, one per CA
//	ca_file = "/etc/renewkit/ca.pem"   # extra PEM roots for the CA's TLS (a private CA)
//	keep = 3                           # generations kept per certificate (0: 3)
//	concurrency = 0                    # certificates renewed at once (0: 4 × CPUs)
//
//	[eab]                              # external account binding, if the CA requires one
//	key_id = "kid-1"
//	hmac_env = "RENEWKIT_EAB_HMAC"     # exactly one of: hmac = "...", hmac_file = "/path", hmac_env = "VAR"
//
//	[files]                            # modes and group of the lineage files (optional)
//	group = "ssl-cert"                 # group of every file (name or gid); keys then default to 0640
//	key_mode = "0640"                  # privkey.pem, combined.pem (default 0600)
//	cert_mode = "0644"                 # cert.pem, chain.pem, fullchain.pem (default 0644)
//	dir_mode = "0750"                  # directories (default 0755)
//
//	[retry]                            # in-run retries of a failing order (defaults shown)
//	retries = 3                        # 0: the default; negative: none
//	initial = "10s"                    # then × multiplier each time, ± jitter
//	multiplier = 3.0
//	max = "5m"
//	jitter = 0.2
//
//	[defaults]                         # any certificate key except name and domains
//	key_type = "ec256"
//	hooks = [["systemctl", "reload", "nginx"]]
//
//	[defaults.challenge]
//	type = "http-01"
//	webroot = "/var/www/html"
//
//	[[certificate]]
//	name = "example.org"               # lineage directory ROOT/NAME (default: the first domain)
//	domains = ["example.org", "www.example.org"]
//	key_type = "ec256"                 # ec256 (default), ec384, rsa2048, rsa3072, rsa4096
//	reuse_key = false                  # keep the private key across renewals
//	profile = "tlsserver"              # ACME profile (default: the CA's)
//	policy = "1/3"                     # renew when 1/3 of the lifetime is left (default);
//	                                   # also "25%", "0.25", "30d", "720h"; an ARI window from the CA wins
//	hooks = [["systemctl", "reload", "nginx"], ["/usr/local/bin/notify", "--quiet"]]
//	hook_timeout = "2m"                # per hook run (default 2m); durations: "90s", "10m", "1d"
//
//	[certificate.challenge]            # replaces [defaults.challenge] as a whole
//	type = "dns-01"                    # http-01, tls-alpn-01 or dns-01
//	provider = "cloudflare"            # see DNS providers below
//	env = { CLOUDFLARE_DNS_API_TOKEN_FILE = "/etc/renewkit/cloudflare-token" }
//	resolvers = ["1.1.1.1:53"]         # where the record is checked before validation
//	propagation_timeout = "2m"         # default: the provider's
//	propagation_delay = "0s"           # wait before the first check
//	skip_propagation_check = false
//
// A certificate inherits each of key_type, reuse_key, profile, policy,
// hooks, hook_timeout and challenge from [defaults] unless it sets it;
// hooks = [] disables inherited hooks. Challenges:
//
//	type = "http-01", webroot = "/var/www/html"   files under webroot/.well-known/acme-challenge/, served by your web server
//	type = "http-01", listen = ":80"               a built-in server on that address (nothing else may use it)
//	type = "tls-alpn-01", listen = ":443"          a built-in TLS-ALPN responder on that address
//	type = "dns-01", provider = "NAME"             TXT records through a DNS provider; wildcards need this
//
// Deploy hooks are argv lists run without a shell, after each new
// certificate is in place, at least once per certificate even across
// crashes (so they must be idempotent; a reload is). They get certbot's
// RENEWED_LINEAGE and RENEWED_DOMAINS and renewkit's RENEWKIT_NAME,
// RENEWKIT_GENERATION, RENEWKIT_SERIAL, RENEWKIT_NOT_AFTER and the paths
// RENEWKIT_CERT, RENEWKIT_CHAIN, RENEWKIT_FULLCHAIN, RENEWKIT_KEY and
// RENEWKIT_COMBINED, in a minimal environment (PATH, HOME, LANG, LC_ALL,
// TZ). A hook that fails stays pending and is retried by every later run;
// the run exits 1 until it succeeds.
//
// # DNS providers
//
// This build links rfc2136 (alias dnsupdate: BIND, Knot, PowerDNS and any
// server taking RFC 2136 updates), exec and httpreq (your own script or
// endpoint), cloudflare, digitalocean and route53. Each is configured by
// lego's usual environment variables (https://go-acme.github.io/lego/dns/),
// taken from the process environment (e.g. systemd's EnvironmentFile) and
// from the challenge's env table, which is applied while the provider is
// built. Secrets belong in files: lego reads VAR_FILE for any VAR, e.g.
// CLOUDFLARE_DNS_API_TOKEN_FILE. lego's registry of all ~230 providers is
// deliberately not linked (its SDKs do not all build); adding one is three
// lines in providers.go.
//
// Challenges whose TXT records share a name (a wildcard and its base name,
// or two certificates for *.example.com and example.com) present their
// values one at a time, under a lock per record name in ROOT/.dns-locks/
// that every run on this machine shares (see the README's DNS-01 section);
// a provider that presents one value at a time (rfc2136, exec) gets its
// sequence interval between two values of one name (RFC2136_SEQUENCE_INTERVAL,
// EXEC_SEQUENCE_INTERVAL: seconds, 60 by default).
// rfc2136 explains a refused update — wrong TSIG secret (BADSIG), unknown
// key name or algorithm (BADKEY), clock skew (BADTIME), a zone the key may
// not update (REFUSED) or that the server does not serve (NOTAUTH) — as a
// local configuration error naming the env keys to fix, never retried, and
// checks the same without a CA in its Preflight.
//
// # Files
//
// Each certificate lives in ROOT/NAME: the stable links cert.pem,
// chain.pem, fullchain.pem, privkey.pem and combined.pem (key and full
// chain in one file) that web servers are configured with, resolving
// through current to one complete generation; state.json (renewal state
// and the deploy-hook journal); generations/; .lock. The ACME account is
// in ROOT/.acme/ unless account_dir says otherwise. ROOT/.dns-locks/ holds
// the DNS-01 record-name locks (never deleted; one small file per name).
//
// # Examples
//
// A first run against Let's Encrypt's staging CA, overriding the file:
//
//	renew-certificates -config /etc/renewkit/config.toml -server staging -root /tmp/staging-test
//
// What would happen now, and what would -force do:
//
//	renew-certificates -dry-run
//	renew-certificates -dry-run -force all
//
// Renew one certificate now (after changing its web server, say):
//
//	renew-certificates -force example.org -cert example.org
//
// The systemd service (examples/systemd) runs
//
//	renew-certificates -config /etc/renewkit/config.toml -log-format json \
//	    -metrics-file /var/lib/node_exporter/textfile_collector/renewkit.prom
package main

// usage is printed by -help.
const usage = `Usage:
  renew-certificates [-config FILE] [flags]      renew what is due
  renew-certificates -dry-run [-force NAME|all]  say what a run would do; change nothing, contact no CA
  renew-certificates -status                     print the status table
  renew-certificates -demo [-root DIR]           the self-contained demo (in-process CA, loopback only)
  renew-certificates -version

Flags:
  -config FILE         configuration file (default /etc/renewkit/config.toml)
  -cert NAME[,NAME]    run (or show) only these certificates
  -force NAME[,NAME]|all
                       renew these now even if not due, ignoring the backoff of earlier failures
  -dry-run             decide and print, change nothing, contact no CA
  -status              print the status table (from the files on disk; contacts no CA)
  -metrics-file FILE   write node_exporter textfile metrics to FILE (atomically) at the end
  -log-format text|json  text (default) for a terminal, json for journald
  -log-level LEVEL     debug, info (default), warn or error
  -demo                run the demo (with -root DIR: in DIR, which must be empty)
  -version             print the version and the DNS providers of this build

Overriding the configuration file:
  -server URL|staging|production  -email ADDRESS  -agree-tos
  -root DIR  -account-dir DIR  -ca-file FILE  -keep N  -concurrency N

Exit codes:
  0  every certificate is fine (renewed, recovered, not due, or locked by another run)
  1  at least one failed, is backing off, or has deploy hooks still failing
  2  bad command line or configuration; nothing was done
  3  interrupted (SIGTERM, SIGINT)

The configuration reference is in the package documentation:
  go doc github.com/renewkit/renewkit/examples/renew-certificates
`
