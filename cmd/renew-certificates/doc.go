// Command renew-certificates renews the TLS certificates listed in a
// configuration file: the one-shot program a systemd timer runs twice a day
// in place of a `certbot renew` wrapper, built on renewkit's crash-safe
// Renewer. Run it as often as you like: a certificate that is not due costs
// a few file reads, no lock and no write, and a request to the CA only when
// its ACME Renewal Information (ARI) window is due to be refreshed (every
// 6 hours).
//
// Try renewkit first, with nothing installed and no network, from a clone of
// its repository:
//
//	go run ./examples/renew-certificates -demo
//
// starts an ACME CA (Let's Encrypt's Pebble) inside the process, issues two
// certificates with real HTTP-01 validation over loopback into a new
// directory, runs a deploy hook, runs again to show that nothing happens
// when nothing is due, and prints the status table and where to look. That
// demo is a program of its own, written with the library alone: this
// command links no test CA, and its -demo flag says where the demo is.
//
// # Usage
//
//	renew-certificates [-config FILE] [flags]      renew what is due
//	renew-certificates -dry-run [-force NAME|all]  say what a run would do; change nothing, order nothing (one GET of the CA's directory)
//	renew-certificates -status [-json]             print the status table (or JSON)
//	renew-certificates -serve [-listen ADDR]       stay up: renew when due, serve /metrics, /healthz, /readyz
//	renew-certificates -import certbot|lego [-from DIR] [-yes]
//	                                               take over certbot's or lego's certificates and account
//	renew-certificates -version | -help-config
//
// Flags:
//
//	-config FILE         configuration file (default /etc/renewkit/config.toml)
//	-cert NAME[,NAME]    run (or show) only these certificates
//	-force NAME[,NAME]|all
//	                     renew these now even if not due, ignoring the backoff of earlier failures
//	-dry-run             decide and print, run the preflight checks, change nothing, order nothing (one GET of the CA's directory)
//	-status              print the status table (from the files on disk; contacts no CA;
//	                     in fleet mode also the fleet's view, read from etcd)
//	-json                with -status: print it as one JSON document
//	-report-only         with -status: exit 0 even when a certificate needs attention
//	                     (without it, -status exits 1 then: a Nagios-style check)
//	-no-fleet            fleet mode off for this run although [fleet] is configured: this
//	                     node orders alone (see "Fleet mode"); not with -serve
//	-metrics-file FILE   write node_exporter textfile metrics to FILE (atomically) at the end
//	-log-format text|json  text (default) for a terminal, json for journald and log shippers
//	-log-level LEVEL     debug, info (default), warn or error
//	-demo                say how to run the demo (go run ./examples/renew-certificates -demo)
//	-serve               long-running mode, for containers (see below)
//	-listen ADDR         -serve's endpoints address, over serve.listen
//	-version             print the version and the DNS providers of this build
//	-help-config         print the configuration reference
//	-import certbot|lego print the plan of taking over the tool's certificates, ACME account
//	                     and hooks (see "Coming from certbot or lego"); nothing is ordered
//	-from DIR            -import's directory (default /etc/letsencrypt; lego: ./.lego)
//	-yes                 -import: import, and write the configuration (-config), appending
//	                     to it when it exists; without -yes nothing is written
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
//	1  at least one certificate failed (including a problem of this
//	   machine found before ordering: a webroot, a port, a hook program, a
//	   directory), is backing off after earlier failures, is locked by a
//	   run that has held it longer than any run takes (lock_stuck: a
//	   stopped or frozen process), or has deploy hooks that still fail; or
//	   the metrics file could not be written (-status: a certificate needs
//	   attention, listed as "NAME: needs attention: …" and in -json's
//	   "attention": its status cannot be read, a foreign file stands in
//	   place of a stable link, its last run failed (a first issuance
//	   included) or found its lock stuck, it is backing off, deploy hooks
//	   are pending, or it expires within 14 days of a 90-day lifetime; with
//	   -report-only, -status exits 0 for all of these; -dry-run: also a
//	   problem the preflight checks found); in
//	   fleet mode also a run deferred because etcd could not be consulted
//	   (nothing changed, the installed certificate is still served; logged
//	   with fault=fleet) and, for -status, a fleet that cannot be read or a
//	   fleet record no node can use
//	2  bad command line or configuration (including DNS provider
//	   credentials that are missing, agree_tos unset before the account
//	   exists, and a [fleet] seal key or TLS file that cannot be used);
//	   nothing was done
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
// # Long-running mode (-serve)
//
// For containers, which have no timer: -serve stays up and runs the same
// renewal as the one-shot run (the same decisions, locks, journal, hooks
// and cross-run backoff; it is renew.Renewer.ServeUpdates), round after
// round, each certificate checked again when it is due (with jitter above
// a minute) and at least every 12 hours. -force applies to the first
// round. It listens on serve.listen (default 127.0.0.1:9750) for
//
//	/metrics  the Prometheus metrics of the metrics package (-metrics-file is for one-shot runs)
//	/healthz  200 while the process runs
//	/readyz   200 when every certificate is ready, else 503; a JSON body
//	          lists the failing certificates and warnings either way (in
//	          fleet mode also "fleet": {"reachable": …}, whether etcd
//	          answered the last run of every certificate)
//
// A certificate is not ready when none is installed, it has expired, its
// alert level has reached serve.ready_level (default "warning": 14 days
// left of a 90-day certificate), or its last renewal failed permanently
// (the CA refused, or a local problem). A transient failure (CA down, rate
// limited), a run deferred because the fleet's etcd could not be consulted
// and failing deploy hooks are warnings only: the certificate is still
// valid.
//
// SIGTERM or SIGINT stops it: the round in progress stops before its next
// irreversible step, a deploy hook already running (and the other hooks of
// a certificate just installed) may finish for four fifths of serve.grace,
// and it exits 0 within serve.grace (default 15 s; past it, it exits 3 at
// once). A second signal kills it at once. SIGHUP reloads the
// configuration file: a valid one takes effect after the round in
// progress (certificates added, removed, changed; serve.listen only on
// restart); an invalid one is logged with file:line and the running one
// stays. Exit codes: 0 after a stop, 1 when the endpoints cannot listen,
// 2 for a bad configuration at start.
//
// # Logs
//
// Logs go to standard error: human-readable text by default, JSON with
// -log-format json. A run ends with one record at Info (msg=run): how many
// certificates ended how (certificates=N renewed=N not_due=N ..., only the
// outcomes that occurred), the earliest renewal time (next_renew_at,
// next_name) and the duration. Each certificate ends with exactly one
// summary record (msg=certificate), at Debug when it was not due and
// nothing else happened (-log-level debug shows them), at Info or above
// otherwise, carrying name, outcome, not_after, renew_at, reason,
// generation, failures, hooks_pending and the error, if any; a failure
// caused on this machine adds fault=local and its fix, a run deferred
// because the fleet's etcd could not be consulted fault=fleet. Durations are
// seconds (a number) in JSON and Go durations ("1.5s") in text; in text,
// a value of several lines is kept on one, its lines joined by "; ". The ACME
// client adds a few records of its own at Info (account created, order
// created, certificate issued). Standard output is used only by -status,
// -dry-run and -version.
//
// # Configuration
//
// The reference of every key is printed by
//
//	renew-certificates -help-config
//
// and is in CONFIG.md beside this file (both generated from configref.go,
// which a test holds to the parser). In short: TOML, read strictly (an
// unknown key, a value of the wrong type and the like are errors naming the
// file and line, exit code 2); top-level keys for the CA, the account and
// the storage root; [files], [retry], [defaults] and one [[certificate]]
// table per certificate, each with a challenge table:
//
//	server = "staging"
//	agree_tos = true
//	email = "admin@example.org"
//
//	[defaults.challenge]
//	type = "http-01"
//	webroot = "/var/www/html"
//
//	[serve]                            # -serve only (defaults shown)
//	listen = "127.0.0.1:9750"          # /metrics, /healthz, /readyz; ":9750" for Kubernetes probes
//	grace = "15s"                      # how long a stop may take (2s to 10m)
//	ready_level = "warning"            # alert level that fails /readyz: notice, warning, urgent, critical, expired
//
//	[[certificate]]
//	domains = ["example.org", "www.example.org"]
//	hooks = [["systemctl", "reload", "nginx"]]
//
// # Fleet mode
//
// With a [fleet] section, the machines listing the same etcd endpoints,
// prefix and seal key share each certificate: a run reads the fleet's
// records of every certificate in one etcd range read; one node orders a
// due certificate under the fleet lock, journals the order in etcd before
// finalizing it and publishes the certificate with its key sealed; every
// node installs that generation into its own lineage and runs its own
// hooks (-serve at once, through an etcd watch). The nodes order with one
// ACME account per CA: before its first run (and after each -serve
// reload) a node shares its account key through etcd and adopts the
// fleet's when it differs (its own is kept as account.key.old), so that
// any node can finish an order another placed. When etcd cannot be
// consulted the run is deferred: nothing changes, the installed
// certificate is still served, a one-line message says what to check and
// the exit code is 1. -no-fleet runs one invocation on the single-node
// path anyway, for an etcd outage that outlasts a certificate. -status
// shows the fleet's view beside the local one; -dry-run checks the seal
// key files and reads etcd once; /readyz reports whether the fleet
// answered. The README's "More than one server" has the failure table.
//
// # Checks before ordering
//
// Before ordering a certificate that is due, a run checks what can be
// checked on this machine (preflight): the webroot's
// .well-known/acme-challenge directory is writable by this user, a listen
// address can be bound (a busy port's error names the process holding
// it), every deploy hook's program exists and is executable, the account
// directory is writable, the DNS provider has its credentials. A problem
// fails that certificate at once with its fix, logged with fault=local,
// and is not counted against the CA's backoff. -dry-run runs the same
// checks for every selected certificate and lists every problem (exit 2
// for configuration, 1 for this machine), contacting no CA. For a webroot
// certificate it also writes a probe file under the webroot and fetches
// it from http://NAME/.well-known/acme-challenge/ on port 80 for each
// name (wildcards excepted), as the CA will, and prints per name "ok" or
// what came back (an HTTP status, a connection error) with the fix: serve
// WEBROOT at / on port 80 for NAME (exit 1).
//
// # Backoff
//
// After a failure at the CA a certificate backs off (from 1 hour, doubling,
// at most a day; longer if the CA sent Retry-After): a run in that time
// logs a warning with the last error, until when, and the -force command
// that retries now. Changing the configuration the failure happened with
// (its challenge, CA, account, names) ends the backoff at once.
//
// # Sharing a port or a root with a service
//
// Supported: one program answers a challenge port at a time. A web server
// already on port 80 serves the challenges from a webroot (http-01 with
// webroot); the built-in listener (listen = ":80") is for hosts where
// nothing else listens on 80, and is bound only while a renewal runs. A
// service that embeds a Renewer with its own HTTP-01 listener or handler
// renews its own certificates: do not also list them here with listen on
// the same port (the CLI's run would fail, naming the process that holds
// the port). The CLI and such a service may share a storage root for
// different certificates; they then share one ACME account directory,
// ROOT/.acme/HOST-HASH (acmeissuer.DefaultAccountDir), which acmeissuer
// locks.
//
// Challenges whose TXT records share a name (a wildcard and its base name,
// or two certificates for *.example.com and example.com) present their
// values one at a time, under a lock per record name in ROOT/.dns-locks/
// that every run on this machine shares (see the README's DNS-01 section);
// a provider that presents one value at a time (rfc2136, exec) gets its
// sequence interval between two values of one name (RFC2136_SEQUENCE_INTERVAL,
// EXEC_SEQUENCE_INTERVAL: seconds, 60 by default).
// rfc2136 (the library's acmeissuer.RFC2136) explains a refused update —
// wrong TSIG secret (BADSIG), a key refused (BADKEY: unknown name or
// algorithm, or, from Knot, a name its ACL does not allow), clock skew
// (BADTIME), a name the key may not update or a key PowerDNS does not know
// (REFUSED), a zone the server does not serve (NOTAUTH) — as a local
// configuration error naming the env keys to fix and each server's update
// policy (BIND update-policy, Knot acl, PowerDNS TSIG-ALLOW-DNSUPDATE),
// never retried, and checks the same without a CA in its Preflight. A
// nameserver that does not answer is retried like any passing failure,
// and named by its address.
//
// # Files
//
// Each certificate lives in ROOT/NAME: the stable links cert.pem,
// chain.pem, fullchain.pem, privkey.pem and combined.pem (key and full
// chain in one file) that web servers are configured with, resolving
// through current to one complete generation; state.json (renewal state
// and the deploy-hook journal); generations/; .lock. The ACME account is
// in ROOT/.acme/HOST-HASH unless account_dir says otherwise. ROOT/.dns-locks/ holds
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
  renew-certificates -dry-run [-force NAME|all]  say what a run would do; change nothing, order nothing (one GET of the CA's directory)
  renew-certificates -status [-json]             print the status table (or JSON)
  renew-certificates -serve [-listen ADDR]       stay up (containers): renew when due, serve probes and metrics
  renew-certificates -import certbot|lego [-from DIR] [-yes]
                                                 take over certbot's or lego's certificates and account
  renew-certificates -version | -help-config | -help-dns PROVIDER

Flags:
  -config FILE         configuration file (default /etc/renewkit/config.toml)
  -cert NAME[,NAME]    run (or show) only these certificates
  -force NAME[,NAME]|all
                       renew these now even if not due, ignoring the backoff of earlier failures
  -dry-run             decide and print, run the preflight checks, change nothing, order nothing (one GET of the CA's directory)
  -status              print the status table (from the files on disk; contacts no CA;
                       in fleet mode also the fleet's view, read from etcd)
  -json                with -status: print it as one JSON document
  -report-only         with -status: exit 0 even when a certificate needs attention
                       (without it, -status exits 1 then: a Nagios-style check)
  -no-fleet            fleet mode off for this run although [fleet] is configured:
                       this node orders alone (for a long etcd outage); not with -serve
  -metrics-file FILE   write node_exporter textfile metrics to FILE (atomically) at the end
  -log-format text|json  text (default) for a terminal, json for journald
  -log-level LEVEL     debug, info (default), warn or error
  -demo                say how to run the demo (go run ./examples/renew-certificates -demo)
  -serve               stay up: renew when due; /metrics, /healthz, /readyz on serve.listen;
                       SIGHUP reloads the configuration, SIGTERM stops within serve.grace
  -listen ADDR         -serve's endpoints address (over serve.listen)
  -version             print the version and the DNS providers of this build
  -help-config         print the configuration reference
  -help-dns PROVIDER   print a DNS provider's variables and an example
                       (every provider: DNS_PROVIDERS.md)
  -import certbot|lego print the plan of taking over the tool's certificates, ACME account
                       and hooks; nothing is ordered (with -server, -email, -root, -account-dir,
                       -ca-file, -config)
  -from DIR            -import's directory (default /etc/letsencrypt; lego: ./.lego)
  -yes                 -import: import, and write the configuration (-config), appending
                       to it when it exists; without -yes nothing is written

Overriding the configuration file:
  -server URL|staging|production  -email ADDRESS  -agree-tos
  -root DIR  -account-dir DIR  -ca-file FILE  -keep N  -concurrency N

Exit codes:
  0  every certificate is fine (renewed, recovered, not due, or locked by another run)
  1  at least one failed (or, -dry-run, would fail a check of this machine),
     is backing off, is held by a stuck run, or has deploy hooks still failing;
     fleet mode: a run deferred because etcd could not be consulted
  2  bad command line or configuration; nothing was done
  3  interrupted (SIGTERM, SIGINT)

The configuration reference (every key, the challenges, DNS providers):
  renew-certificates -help-config
`
