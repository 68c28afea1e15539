package acmeissuer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"

	"github.com/renewkit/renewkit/renew"
)

// errCARootsPEM reports that Config.CARootsPEM holds no usable
// certificate, or a PEM block that is not one. New reports it in a
// *renew.ConfigError for the field CARootsPEM (a caller that read the PEM
// from a file names the file with it).
var errCARootsPEM = errors.New("not a bundle of PEM certificates")

// Config configures an [Issuer]. Every optional field documents what its zero
// value means.
type Config struct {
	// DirectoryURL is the ACME directory, e.g.
	// "https://acme-v02.api.letsencrypt.org/directory". Required, https only:
	// there is deliberately no default, so that no test talks to a public CA
	// by accident.
	DirectoryURL string

	// Email is the account's contact address, one plain address as
	// [ValidateEmail] accepts it (no "mailto:"). Empty registers an account
	// without contact. It is used only when an account is created.
	Email string

	// AgreeTOS records that the operator agrees to the CA's terms of service.
	// It must be true to create an account at a CA that publishes terms;
	// an existing account (found by its key) is used without it.
	AgreeTOS bool

	// EAB is the External Account Binding the CA gave the operator. Nil means
	// none; a CA that requires one then refuses to create the account, and the
	// error says so.
	EAB *EAB

	// AccountDir is where the account key (account.key, 0600) and the
	// account record (account.json) live; created (0700) if missing. One
	// directory per CA account. It and its files must be owned by the
	// effective user and not writable by group or others (see "Trust in the
	// account directory" in the package documentation). Required.
	AccountDir string

	// HTTPClient returns the *http.Client for talking to the CA (its
	// Transport decides TLS trust, proxies, timeouts). It is called once for
	// every lego API client the Issuer creates; the Issuer works on a shallow
	// copy, because lego wraps the client's Transport in place, so the
	// returned client is never modified. Nil means a client on a clone of
	// http.DefaultTransport with a 30 s timeout per request, trusting the
	// roots that CARoots and CARootsPEM describe. Setting HTTPClient
	// together with CARoots or CARootsPEM is an error: the client's own
	// Transport decides trust then.
	HTTPClient func() *http.Client

	// CARoots and CARootsPEM decide which roots the Issuer trusts for its
	// TLS connections to the CA (the directory and every URL it links to):
	// set them for a private CA, or for a test CA such as
	// [github.com/renewkit/renewkit/renew/acmetest]. They do not decide
	// which issued chains are accepted (renew.Renewer.Roots does).
	//
	// CARoots is the pool trusted instead of the system roots; New takes a
	// copy, so later changes to the pool do not reach the Issuer. Nil means
	// the system roots.
	CARoots *x509.CertPool
	// CARootsPEM holds PEM-encoded certificates (e.g. the contents of a
	// private CA's bundle file) trusted in addition to CARoots, or to the
	// system roots when CARoots is nil. Every PEM block must be a
	// CERTIFICATE that parses, and there must be at least one: anything else
	// is an error (a *renew.ConfigError for CARootsPEM). Text between
	// blocks is ignored.
	// Nil or empty means none.
	CARootsPEM []byte
	// CARootsSource names where CARootsPEM came from, for the fix an
	// untrusted server certificate's error gives (e.g. "ca_file
	// /etc/renewkit/ca.pem (config.toml:3)"). Empty means "CARootsPEM".
	CARootsSource string

	// UserAgent is prepended to lego's User-Agent. Empty means
	// "renewkit-acmeissuer".
	UserAgent string

	// HTTP01, TLSALPN01 and DNS01 configure the challenge types the Issuer
	// may solve. At least one is required. For each authorization the Issuer
	// picks, among the challenges the CA offers, HTTP-01 first, then
	// TLS-ALPN-01, then DNS-01; wildcard names always use DNS-01.
	HTTP01    *HTTP01
	TLSALPN01 *TLSALPN01
	DNS01     *DNS01

	// Routes gives certificates their own challenges, by certificate name
	// (renew.Certificate.Name, which reaches the Issuer as
	// renew.IssueRequest.Name): an order for a name listed here is solved
	// with its entry instead of HTTP01, TLSALPN01 and DNS01 above, which
	// stay the default for every other certificate. One Issuer thus serves
	// a Renewer whose certificates are validated differently (one by a
	// webroot, another by DNS-01, a third by a listener), with one account
	// and one API client. Every entry must configure at least one
	// challenge; with Routes set, the default may configure none, and an
	// order for a certificate not listed then fails permanently. Routes
	// that name the same listen address share its listener (an address is
	// either HTTP-01's or TLS-ALPN-01's). A journaled order needs no
	// challenge any more: [Issuer.Resume] finishes it whatever the route.
	//
	// An entry whose webroot is missing on this machine does not fail
	// [New] (as the default's does): only that certificate's orders fail,
	// at the Preflight before ordering (and in Issue, before ordering),
	// with a *renew.LocalError naming the fix, so that one broken site does
	// not stop the renewal of the others; once the webroot exists, its
	// orders proceed without a new Issuer.
	// Nil means every certificate uses the default.
	Routes map[string]Challenges

	// Logger receives the Issuer's records (order URLs, challenge progress,
	// warnings such as a dropped "replaces"). Keys never appear in it. Nil
	// discards. lego's own process-wide logger is not touched; see
	// [SetLegoLogger].
	Logger *slog.Logger

	// PollInterval is the first wait between two polls of an authorization
	// or an order when the CA sends no Retry-After; it doubles up to
	// MaxPollInterval. The first poll is immediate. Zero means 50 ms.
	PollInterval time.Duration
	// MaxPollInterval caps the wait between polls when the CA sends no
	// Retry-After. A Retry-After from the CA is honoured as sent. Zero means
	// 5 s.
	MaxPollInterval time.Duration
	// ValidationTimeout bounds the wait for the CA to validate one
	// authorization. Zero means 2 min.
	ValidationTimeout time.Duration
	// IssuanceTimeout bounds the wait from finalize to a downloaded
	// certificate (and, in Resume, from the first poll). Zero means 2 min.
	IssuanceTimeout time.Duration
	// CleanupTimeout bounds challenge clean-up and the deactivation of
	// pending authorizations after a failure; these run with a context
	// independent of the caller's. Zero means 10 s.
	CleanupTimeout time.Duration

	// caRoots is New's copy of CARoots, and extraRoots CARootsPEM's
	// certificates, parsed by withDefaults. The pool the HTTP client trusts
	// is built from them when the CA is first contacted (newHTTPClient), not
	// by New: a run that finds nothing due contacts no CA, and loading the
	// system roots that CARootsPEM adds to reads and parses every file of
	// the system's trust store.
	caRoots    *x509.CertPool
	extraRoots []*x509.Certificate
}

// Challenges is one way of answering the CA's challenges: the challenge
// types an order may solve and how. At least one must be set. For each
// authorization the Issuer picks, among the challenges the CA offers,
// HTTP-01 first, then TLS-ALPN-01, then DNS-01; wildcard names always use
// DNS-01. Config holds the default set (its fields of the same names) and
// Config.Routes one per certificate.
type Challenges struct {
	HTTP01    *HTTP01
	TLSALPN01 *TLSALPN01
	DNS01     *DNS01
}

// empty reports whether no challenge is configured.
func (ch *Challenges) empty() bool { return ch.HTTP01 == nil && ch.TLSALPN01 == nil && ch.DNS01 == nil }

// defaultChallenges returns the default challenges: c's own fields.
func (c *Config) defaultChallenges() Challenges {
	return Challenges{HTTP01: c.HTTP01, TLSALPN01: c.TLSALPN01, DNS01: c.DNS01}
}

// checkListeners refuses an address that one set of challenges uses for
// HTTP-01 and another (or the same) for TLS-ALPN-01: one listener cannot
// serve both.
func (c *Config) checkListeners() error {
	kind := map[string]string{} // address → "HTTP01" or "TLSALPN01"
	check := func(prefix string, ch Challenges) error {
		for _, l := range []struct{ typ, addr string }{
			{"HTTP01", addrOf(ch.HTTP01)}, {"TLSALPN01", addrOfALPN(ch.TLSALPN01)},
		} {
			if l.addr == "" {
				continue
			}
			if k, ok := kind[l.addr]; ok && k != l.typ {
				return &renew.ConfigError{Field: prefix + l.typ + ".Addr",
					Err: fmt.Errorf("%q is also a %s address: one listener cannot answer both challenge types", l.addr, challengeNames[k])}
			}
			kind[l.addr] = l.typ
		}
		return nil
	}
	if err := check("", c.defaultChallenges()); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(c.Routes)) {
		if err := check(fmt.Sprintf("Routes[%q].", name), c.Routes[name]); err != nil {
			return err
		}
	}
	return nil
}

// challengeNames are the challenge types of Config's field names.
var challengeNames = map[string]string{"HTTP01": "http-01", "TLSALPN01": "tls-alpn-01"}

func addrOf(h *HTTP01) string {
	if h == nil {
		return ""
	}
	return h.Addr
}

func addrOfALPN(t *TLSALPN01) string {
	if t == nil {
		return ""
	}
	return t.Addr
}

// EAB is an External Account Binding (RFC 8555 §7.3.4).
type EAB struct {
	// KeyID is the key identifier the CA gave. Required.
	KeyID string
	// HMAC is the MAC key the CA gave, base64url-encoded (padded or not).
	// Required. It is never logged.
	HMAC string
}

// HTTP01 configures the HTTP-01 challenge. Exactly one way of serving tokens
// applies: Addr (a built-in listener), Webroot (files under a directory a web
// server already serves), or neither (the caller mounts
// [Issuer.HTTP01Handler] in its own port-80 server).
type HTTP01 struct {
	// Addr is the address ("host:port", e.g. ":80") of the built-in token
	// server. It is bound on the first HTTP-01 challenge, kept for the
	// Issuer's lifetime (concurrent orders share it) and released by
	// [Issuer.Close].
	Addr string
	// Webroot is a directory served at "/" by an existing web server; tokens
	// are written under Webroot/.well-known/acme-challenge/ (mode 0644, the
	// directories created 0755) and removed after validation. It must
	// exist. Tokens are never written through a symbolic link: the token
	// file is opened with O_NOFOLLOW, and .well-known or acme-challenge may
	// be a symbolic link only when owned by this process's user or root (a
	// webroot's owner cannot make the renewer write elsewhere). A failed
	// validation's error names the URL the CA fetched and what to check;
	// [HTTP01.SelfCheck] finds the usual mistake before an order.
	Webroot string

	// dial, when set, replaces the system dialer (and resolver) of
	// SelfCheck: tests map names to a loopback address.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// TLSALPN01 configures the TLS-ALPN-01 challenge (RFC 8737).
type TLSALPN01 struct {
	// Addr is the address ("host:port", e.g. ":443") of the built-in
	// listener answering "acme-tls/1" handshakes. Required. Bound on the
	// first TLS-ALPN-01 challenge and kept until [Issuer.Close].
	Addr string
}

// DNS01 configures the DNS-01 challenge.
type DNS01 struct {
	// Provider publishes and removes the TXT records: [RFC2136], or one of
	// lego's DNS providers. Required. Present and CleanUp must honour ctx,
	// and CleanUp must remove only its own value (a wildcard and its base
	// name share one record name). A provider may check its set-up before
	// an order: with a PreflightNames(ctx, names []string) error method
	// (given the certificate's names, by Issuer.Preflight) or a
	// Preflight(ctx) error method; an error that is not a
	// *renew.LocalError is made one. A Present failure that is a
	// *renew.LocalError, or that says the provider's API refused its
	// credentials, is permanent; any other is transient.
	Provider challenge.Provider
	// Resolvers ("host" or "host:port") are queried for the TXT record
	// before the CA is asked to validate; every one must answer it. Empty
	// means the nameservers of /etc/resolv.conf.
	Resolvers []string
	// SkipPropagationCheck asks the CA to validate without checking the
	// record first (after PropagationDelay, if any).
	SkipPropagationCheck bool
	// PropagationDelay is waited after the records are presented, before
	// the first check. Zero means none.
	PropagationDelay time.Duration
	// PropagationTimeout bounds the check. Zero means the provider's
	// Timeout() if it implements challenge.ProviderTimeout, else 60 s.
	PropagationTimeout time.Duration
	// PropagationInterval is the wait between checks. Zero means the
	// provider's interval if it implements challenge.ProviderTimeout, else
	// 2 s. The first check is immediate.
	PropagationInterval time.Duration
	// LockDir is the directory of the record-name locks: one lock file per
	// DNS-01 record name (DIR/_acme-challenge.example.org.lock, created
	// 0600 and never deleted; the directory is created 0700). A challenge
	// holds the lock of its record name from before Present to after
	// CleanUp, so that orders of other Issuers and of other processes
	// sharing the directory never present a value under the same name at
	// the same time. Point every process renewing names of one zone on
	// this machine at the same directory (the CLI uses ROOT/.dns-locks).
	// Empty means serialisation within this Issuer only.
	LockDir string
	// ProviderName names the provider in messages ("cloudflare"). Empty
	// means the provider's String method, if it has one (NewRFC2136's
	// names its nameserver), else "DNS-01 provider": never a Go type.
	ProviderName string
	// CredentialsFix is the fix a message names when the provider's API
	// refuses its credentials (lego reports HTTP 401 or 403, or an AWS
	// authentication error code): which settings to check, e.g. "check
	// CLOUDFLARE_DNS_API_TOKEN (a token with Zone.DNS edit on the zone)".
	// Such a failure is local (a *renew.LocalError: not retried, see the
	// package documentation) whatever this says. Empty means "check the
	// provider's credentials and their permission on the zone".
	CredentialsFix string
}

// ValidateEmail reports whether addr can be Config.Email: one plain
// address (local@domain), without "mailto:", spaces, a list separator or
// angle brackets. The error quotes addr and says what is expected.
func ValidateEmail(addr string) error {
	if strings.HasPrefix(addr, "mailto:") || strings.Count(addr, "@") != 1 ||
		strings.HasPrefix(addr, "@") || strings.HasSuffix(addr, "@") || strings.ContainsAny(addr, " \t\r\n,;<>") {
		return fmt.Errorf("%q must be a plain address like admin@example.org", addr)
	}
	return nil
}

func (c *Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %w", renew.ErrConfig, &renew.ConfigError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if c.DirectoryURL == "" {
		return bad("DirectoryURL", "required (there is no default CA)")
	}
	u, err := url.Parse(c.DirectoryURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return bad("DirectoryURL", "%q must be an https URL", c.DirectoryURL)
	}
	if c.AccountDir == "" {
		return bad("AccountDir", "required")
	}
	if c.Email != "" {
		if err := ValidateEmail(c.Email); err != nil {
			return bad("Email", "%w", err)
		}
	}
	if c.EAB != nil {
		if c.EAB.KeyID == "" || c.EAB.HMAC == "" {
			return bad("EAB", "needs both KeyID and HMAC")
		}
		if _, err := decodeHMAC(c.EAB.HMAC); err != nil {
			return bad("EAB.HMAC", "not base64url") // the value itself is a secret: never echo it
		}
	}
	if c.HTTPClient != nil && (c.CARoots != nil || len(c.CARootsPEM) > 0) {
		return bad("HTTPClient", "set HTTPClient or CARoots/CARootsPEM, not both (HTTPClient's Transport decides which roots it trusts)")
	}
	if _, err := parseRootsPEM(c.CARootsPEM); err != nil {
		return fmt.Errorf("%w: %w", renew.ErrConfig, &renew.ConfigError{Field: "CARootsPEM", Err: err})
	}
	def := c.defaultChallenges()
	if def.empty() && len(c.Routes) == 0 {
		return bad("HTTP01", "no challenge configured: set HTTP01, TLSALPN01 or DNS01, or Routes")
	}
	if !def.empty() {
		if err := def.validate("", true); err != nil {
			return fmt.Errorf("%w: %w", renew.ErrConfig, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Routes)) {
		ch := c.Routes[name]
		prefix := fmt.Sprintf("Routes[%q].", name)
		if ch.empty() {
			return bad(prefix+"HTTP01", "no challenge configured: set HTTP01, TLSALPN01 or DNS01")
		}
		if err := ch.validate(prefix, false); err != nil {
			return fmt.Errorf("%w: %w", renew.ErrConfig, err)
		}
	}
	if err := c.checkListeners(); err != nil {
		return fmt.Errorf("%w: %w", renew.ErrConfig, err)
	}
	if c.PollInterval < 0 || c.MaxPollInterval < 0 || c.ValidationTimeout < 0 || c.IssuanceTimeout < 0 || c.CleanupTimeout < 0 {
		return bad("PollInterval", "negative duration (PollInterval, MaxPollInterval, ValidationTimeout, IssuanceTimeout or CleanupTimeout)")
	}
	if c.PollInterval > 0 && c.MaxPollInterval > 0 && c.PollInterval > c.MaxPollInterval {
		return bad("PollInterval", "%v exceeds MaxPollInterval %v", c.PollInterval, c.MaxPollInterval)
	}
	return nil
}

// validate checks one set of challenges; prefix is prepended to the field
// names of its errors (*renew.ConfigError). With statWebroot, a webroot
// that does not exist or is not a directory is an error (the default
// challenges: New fails); without, it is left to the route (see
// Config.Routes).
func (ch *Challenges) validate(prefix string, statWebroot bool) error {
	bad := func(field, format string, args ...any) error {
		return &renew.ConfigError{Field: prefix + field, Err: fmt.Errorf(format, args...)}
	}
	if h := ch.HTTP01; h != nil {
		if h.Addr != "" && h.Webroot != "" {
			return bad("HTTP01", "set Addr or Webroot, not both")
		}
		if h.Addr != "" {
			if _, _, err := net.SplitHostPort(h.Addr); err != nil {
				return bad("HTTP01.Addr", "%q: %w", h.Addr, err)
			}
		}
		if h.Webroot != "" && statWebroot {
			fi, err := os.Stat(h.Webroot)
			if err != nil {
				return bad("HTTP01.Webroot", "%w", err)
			}
			if !fi.IsDir() {
				return bad("HTTP01.Webroot", "%q is not a directory", h.Webroot)
			}
		}
	}
	if t := ch.TLSALPN01; t != nil {
		if t.Addr == "" {
			return bad("TLSALPN01.Addr", "required")
		}
		if _, _, err := net.SplitHostPort(t.Addr); err != nil {
			return bad("TLSALPN01.Addr", "%q: %w", t.Addr, err)
		}
	}
	if d := ch.DNS01; d != nil {
		if d.Provider == nil {
			return bad("DNS01.Provider", "required")
		}
		if rp, ok := d.Provider.(*RFC2136); ok {
			if rp == nil {
				return bad("DNS01.Provider", "nil *RFC2136")
			}
			if err := rp.check(prefix + "DNS01.Provider."); err != nil {
				return err
			}
		}
		for _, r := range d.Resolvers {
			if r == "" {
				return bad("DNS01.Resolvers", "empty entry")
			}
		}
		if d.PropagationDelay < 0 || d.PropagationTimeout < 0 || d.PropagationInterval < 0 {
			return bad("DNS01", "negative duration")
		}
	}
	return nil
}

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.UserAgent == "" {
		c.UserAgent = "renewkit-acmeissuer"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PollInterval == 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	if c.MaxPollInterval == 0 {
		c.MaxPollInterval = 5 * time.Second
	}
	if c.PollInterval > c.MaxPollInterval {
		c.PollInterval = c.MaxPollInterval
	}
	if c.ValidationTimeout == 0 {
		c.ValidationTimeout = 2 * time.Minute
	}
	if c.IssuanceTimeout == 0 {
		c.IssuanceTimeout = 2 * time.Minute
	}
	if c.CleanupTimeout == 0 {
		c.CleanupTimeout = 10 * time.Second
	}
	if c.CARoots != nil {
		c.caRoots = c.CARoots.Clone()
	}
	c.extraRoots, _ = parseRootsPEM(c.CARootsPEM) // validate has reported its error
	return c
}

// newHTTPClient returns a fresh client for one lego API client. It is
// called when the CA is about to be contacted, and only then builds the
// pool of trusted roots (see tlsRoots).
func (c *Config) newHTTPClient() (*http.Client, error) {
	if c.HTTPClient != nil {
		if hc := c.HTTPClient(); hc != nil {
			cp := *hc // lego wraps Transport in place: work on our own copy
			return &cp, nil
		}
	}
	roots, err := c.tlsRoots()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// tlsRoots returns the pool CARoots and CARootsPEM describe, or nil for the
// system roots (which crypto/tls then loads at the first handshake). With
// CARootsPEM and no CARoots it loads the system roots to add to: the
// standard library reads them once per process.
func (c *Config) tlsRoots() (*x509.CertPool, error) {
	if len(c.extraRoots) == 0 {
		return c.caRoots, nil // nil: the system roots
	}
	var pool *x509.CertPool
	if c.caRoots != nil {
		pool = c.caRoots.Clone()
	} else {
		var err error
		if pool, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("%w: %w", renew.ErrConfig, &renew.ConfigError{Field: "CARootsPEM", Err: fmt.Errorf("load the system roots it adds to: %w", err)})
		}
	}
	for _, cert := range c.extraRoots {
		pool.AddCert(cert)
	}
	return pool, nil
}

// parseRootsPEM parses CARootsPEM: nil for none, else every block must be
// a CERTIFICATE that parses, and there must be one at least.
func parseRootsPEM(data []byte) ([]*x509.Certificate, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		n := len(certs) + 1
		if b.Type != "CERTIFICATE" {
			// The type only: a block may be a key pasted by mistake.
			return nil, fmt.Errorf("%w: block %d is a %q block, not a CERTIFICATE", errCARootsPEM, n, b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: block %d: %w", errCARootsPEM, n, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no PEM block in %d bytes", errCARootsPEM, len(data))
	}
	return certs, nil
}

// decodeHMAC decodes an EAB MAC key the way lego does (raw or padded base64url).
func decodeHMAC(s string) ([]byte, error) {
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}
