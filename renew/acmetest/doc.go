// Package acmetest runs an ACME certificate authority inside the calling
// process, for the tests of programs that use renewkit: a real CA (Let's
// Encrypt's Pebble) on a loopback HTTPS listener, which validates HTTP-01,
// TLS-ALPN-01 and DNS-01 challenges for real over loopback and issues
// certificates with the lifetimes of the profiles it offers. Nothing leaves
// the machine and nothing needs to be installed.
//
//	func TestRenewal(t *testing.T) {
//		ca := acmetest.New(t, acmetest.Options{}) // closed when the test ends
//		iss, err := acmeissuer.New(t.Context(), ca.IssuerConfig(t.TempDir()))
//		...
//		r := &renew.Renewer{Root: t.TempDir(), Issuer: iss, Roots: ca.ChainRoots()}
//		res := r.Run(t.Context(), renew.Certificate{Name: "www", Domains: []string{"www.example.test"}})
//		...
//	}
//
// [CA.IssuerConfig] is an [acmeissuer.Config] that works as it is: the
// directory URL, trust in the CA's TLS certificate ([CA.TLSRoots]; the
// [acmeissuer.Config] fields CARoots and CARootsPEM are how any private CA
// is trusted), the terms of service agreed, and the challenge this CA can
// check. Change what your program changes (Email, EAB, the challenge, the
// Logger) and keep the rest.
//
// # Names and challenges
//
// The CA resolves every name to 127.0.0.1 through its own DNS responder,
// so certificates can be ordered for any name (use names under .test, as
// the examples do). How each challenge reaches your code:
//
//   - HTTP-01: the CA fetches tokens from [CA.HTTP01Addr]. Either your
//     Issuer's built-in listener binds it (acmeissuer.HTTP01.Addr, what
//     IssuerConfig sets), or your own HTTP server listens there and mounts
//     [acmeissuer.Issuer.HTTP01Handler], or, with Options.Webroot, the CA
//     serves tokens your program writes into a webroot
//     (acmeissuer.HTTP01.Webroot) as a web server would.
//   - TLS-ALPN-01: the CA connects to [CA.TLSALPN01Addr]
//     (acmeissuer.TLSALPN01.Addr).
//   - DNS-01: [CA.DNS01] publishes TXT records on the CA's DNS responder and
//     points the propagation check at it; it also solves wildcard names.
//   - Options.AlwaysValid skips validation: nothing needs to listen, so any
//     number of Issuers (e.g. one per parallel test) can use one CA.
//
// Only one listener can hold HTTP01Addr at a time: run tests that use the
// built-in listener of one CA one after another, or start one CA per test
// (a CA starts in a few milliseconds).
//
// # Lifetimes and renewal
//
// The CA offers the profiles "default" (90 days) and "shortlived" (6 days)
// and those in Options.Profiles; a certificate's lifetime is its profile's.
// Name the profile in renew.Certificate.Profile (the CA picks one at random
// for orders that name none, unless only one is offered). A profile of a few
// seconds lets a test see a real renewal; [CA.SetRenewalWindow] makes the
// CA's renewal information (ARI, RFC 9773) say "renew now" instead.
//
// # Guarantees and preconditions
//
// A CA is safe for concurrent use. Its state (accounts, orders,
// certificates) is in memory and lives exactly as long as the CA: it
// survives a renewal subprocess that a test kills, and it dies with the
// process that started it. Close releases its listeners and its temporary
// file; it leaves behind one goroutine of Pebble's validation authority,
// which has no way to stop it (goroutine-leak checkers must allow for
// va.(*VAImpl).processTasks). Requires a loopback interface with 127.0.0.1.
// It writes nothing else to disk; the crash-safety guarantees of renewkit
// concern your program's files, not the test CA.
//
// The CA is for tests. Its TLS certificate and its issuing roots are made
// up at Start and trusted nowhere else.
package acmetest
