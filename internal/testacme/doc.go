// Package testacme runs a real ACME CA inside the calling process, for tests
// and for the CLI's -demo mode: Let's Encrypt's Pebble (its ca, db, va and
// wfe packages) behind a TLS listener on 127.0.0.1, with a loopback DNS
// responder, real HTTP-01, DNS-01 and TLS-ALPN-01 validation, ACME profiles,
// ARI control, fault injection and accounting.
//
//	s, err := testacme.Start(testacme.Options{})
//	...
//	defer s.Close()
//	cfg := lego.NewConfig(user)
//	cfg.CADirURL = s.DirectoryURL()
//	cfg.HTTPClient = s.HTTPClient() // a new one per lego client
//	cfg.Certificate = lego.CertificateConfig{Timeout: 3 * time.Second, OverallRequestLimit: 1000}
//
// In tests, [New] does the same and closes the server in t.Cleanup.
//
// Other modules cannot import this package; its public face for them is
// [github.com/renewkit/renewkit/renew/acmetest], which exposes what a
// program's own tests need (no faults, no Pebble internals).
//
// # Guarantees and preconditions
//
// Nothing leaves the machine: the ACME endpoint, the DNS responder and the
// ports the VA validates against are on 127.0.0.1, and Pebble's VA resolves
// only through the responder (every name is A 127.0.0.1, there is no AAAA).
// The CA's state (accounts, orders, certificates, roots) is in memory: it
// lives exactly as long as the Server, so a renewal subprocess that is
// killed leaves it intact, while the process owning the Server takes it
// along when it dies. Requires a loopback interface with 127.0.0.1;
// HTTP01Addr's port stays reserved until Close on Linux only (elsewhere it
// was free at Start and could be taken by another process in between).
//
// A Server is safe for concurrent use; any number of servers can run in one
// process, also from parallel tests. Pebble reads its settings from
// environment variables inside its constructors; Start sets and restores them
// under a package mutex, so they never leak into the rest of the process.
// The values used: PEBBLE_VA_NOSLEEP=1 (no random sleep before validation),
// PEBBLE_WFE_NONCEREJECT=Options.NonceRejectPercent (Pebble's default is 5 %),
// PEBBLE_AUTHZREUSE=0 (default 50 %; Pebble still reuses a valid
// authorization of the same account 1 % of the time even at 0 — clients that
// count validations set ObtainRequest.AlwaysDeactivateAuthorizations),
// PEBBLE_VA_ALWAYS_VALID from Options.AlwaysValid.
//
// # Known leak
//
// Pebble's VA starts one goroutine per instance (its task loop) and has no
// way to stop it: every Server leaves exactly that goroutine behind after
// Close (measured in TestCloseReleasesEverything). Goroutine-leak checkers
// must allow for va.(*VAImpl).processTasks. Everything else the Server
// starts (listeners, DNS responder, token server, held requests) stops in
// Close.
//
// # HTTP-01: two alternatives
//
// The VA fetches every HTTP-01 token from http://<name>:PORT/, PORT being
// the one in [Server.HTTP01Addr], reserved at Start (or Options.HTTP01Port).
// Either the client under test listens there with its own solver (what
// renew's issuer does; lego's http01.NewProviderServer("127.0.0.1", port)
// works but binds per challenge, so not for concurrent orders), or the test
// sets Options.ServeHTTP01 and registers [Server.HTTP01Provider], a token
// map served by the Server on that port. Not both: only one can listen.
// TLS-ALPN-01 likewise validates against [Server.TLSALPN01Addr].
//
// # DNS-01
//
// [Server.DNS01Provider] publishes TXT records on the DNS responder (see
// [DNSResponder]; [Server.DNSAddr] is its address). lego resolves on its own
// for DNS-01 — CNAME following and the propagation check — through a
// process-wide client that defaults to /etc/resolv.conf; testacme does not
// touch that global. Either point it at a responder shared with the server
// (Options.DNS; in TestMain: dns01.SetDefaultClient with
// RecursiveNameservers = responder.Addr(), and
// dns01.DisableAuthoritativeNssPropagationRequirement() on the provider), or
// switch both off (dns01.PropagationWait(0, true) and
// LEGO_DISABLE_CNAME_SUPPORT=true).
//
// # Speed
//
// Pebble answers a challenge POST while validation is still running and
// sends no Retry-After, so lego sleeps about 5 s per name before its first
// authorization poll. The Server holds the challenge response until Pebble's
// store shows the challenge valid or invalid, and the finalize response
// until the order has left "processing", so lego's first poll sees the
// result. Tune lego's Certificate config as above: OverallRequestLimit 1000
// (1 ms instead of 56 ms of sleep per name) and Timeout 3 s (order polls
// every 50 ms instead of 500 ms; it also bounds lego's order poll, which
// ignores ctx).
//
// Measured on 2 vCPUs (go test -run '^$' -bench . -benchtime=300x -count=3),
// one name per certificate, ECDSA P-256 key generated per order, one lego
// client per goroutine, "parallel" = 8 clients at once:
//
//	Start + Close                          1.7–2.1 ms
//	issue, real HTTP-01, serial            8.2–8.8 ms   (~120/s)
//	issue, real HTTP-01, parallel          3.2–3.4 ms   (~300/s)
//	issue, AlwaysValid, serial             6.3–6.4 ms   (~155/s)
//	issue, AlwaysValid, parallel           1.7–1.8 ms   (~580/s)
//
// Under -race (-benchtime=100x): Start 4.1 ms; issue 21 / 10 ms (HTTP-01
// serial / parallel), 16 / 7 ms (AlwaysValid).
//
// # Faults
//
// [Server.Inject] puts faults in front of Pebble, per [Endpoint]: ACME
// problems (badNonce, rateLimited with Retry-After, serverInternal, ...),
// HTML error pages (of any size), huge or endless bodies, TCP resets,
// delays and stalls, for the next N requests
// or with a probability, at any time. [Server.FaultStats] counts what fired.
// [FaultPendingError] reports a failed challenge left "pending" (step-ca's
// behaviour), and [Server.ForgetAccount] simulates a CA reset that forgot an
// account (and, optionally, refuses its key).
//
// # Accounting
//
// [Server.Stats] counts orders, replacing orders and issued certificates per
// identifier set and the largest number of orders in flight at once (see
// [Stats] for the definition, chosen so that orders abandoned by a killed
// client do not count as in flight forever). [Server.Finalizations] lists
// the finalize requests that arrived per identifier set, each with a
// position in the test's own record of events (Options.Sequence): a
// power-loss test decides from it, not from what the client says, whether
// an issuance may have begun before a power cut.
//
// # Concurrency bugs in Pebble, and how the Server avoids them
//
// Deadlock. Pebble's Authz handler holds an authorization's lock while it
// takes the store's read lock; newOrder (FindValidAuthorization, which walks
// every authorization) and order reads (GetOrderByID) hold the store's read
// lock while they take authorization locks. A store writer queued in
// between (a new order, account or certificate) closes the cycle and the
// whole CA freezes: a few hundred concurrent orders did it in about one run
// of two. The Server runs Authz requests exclusively of newOrder, order,
// finalize and list-orders requests (each kind still runs concurrently with
// its own kind: Authz requests are serialized among themselves)
// (TestConcurrentOrdersDoNotDeadlock). Rarer cycles remain that need two
// requests on the same order at once, which sequential clients never send.
//
// Data race. Pebble reads a certificate's "replaced" flag without a lock
// when a new order names it in ARI's `replaces` (wfe
// validateReplacementOrder), while the goroutine that finishes a
// finalization writes it (db UpdateReplacedOrder). Under -race, renewing the
// same certificate twice — e.g. again after a crash lost the first
// replacement — is reported as a data race inside Pebble (3 of 4 runs of
// TestRenewReplacesRace without the countermeasure). The Server orders the
// two from the outside: a finalize response is held, under a shared lock,
// until Pebble's store shows the predecessor marked replaced (read under
// that order's own lock), and a newOrder that carries `replaces` takes the
// lock exclusively; the read then happens after the write for the race
// detector as it does in fact. No child process is needed. Pebble marks a
// predecessor replaced only when the replacing order is finalized, so
// concurrent orders replacing one certificate are all accepted.
package testacme
