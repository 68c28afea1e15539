package acmeissuer

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"
)

// ErrConfig reports an invalid [Config]; errors from [New] wrap it.
var ErrConfig = errors.New("acmeissuer: invalid configuration")

// ErrCARootsPEM reports that Config.CARootsPEM holds no usable certificate,
// or a PEM block that is not one. Errors wrapping it also wrap [ErrConfig];
// callers that read the PEM from a file can name the file with it.
var ErrCARootsPEM = errors.New("CARootsPEM is not a bundle of PEM certificates")

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
	// is an error wrapping [ErrCARootsPEM]. Text between blocks is ignored.
	// Nil or empty means none.
	CARootsPEM []byte

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
	// are written under Webroot/.well-known/acme-challenge/ (by lego's
	// webroot provider) and removed after validation. It must exist.
	Webroot string
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
	// Provider publishes and removes the TXT records, e.g. one of lego's DNS
	// providers. Required. Present and CleanUp must honour ctx, and CleanUp
	// must remove only its own value (a wildcard and its base name share
	// one record name).
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
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.DirectoryURL == "" {
		return bad("DirectoryURL is required (there is no default CA)")
	}
	u, err := url.Parse(c.DirectoryURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return bad("DirectoryURL %q must be an https URL", c.DirectoryURL)
	}
	if c.AccountDir == "" {
		return bad("AccountDir is required")
	}
	if c.Email != "" {
		if err := ValidateEmail(c.Email); err != nil {
			return bad("Email %v", err)
		}
	}
	if c.EAB != nil {
		if c.EAB.KeyID == "" || c.EAB.HMAC == "" {
			return bad("EAB needs both KeyID and HMAC")
		}
		if _, err := decodeHMAC(c.EAB.HMAC); err != nil {
			return bad("EAB.HMAC is not base64url") // the value itself is a secret: never echo it
		}
	}
	if c.HTTPClient != nil && (c.CARoots != nil || len(c.CARootsPEM) > 0) {
		return bad("set HTTPClient or CARoots/CARootsPEM, not both (HTTPClient's Transport decides which roots it trusts)")
	}
	if _, err := parseRootsPEM(c.CARootsPEM); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.HTTP01 == nil && c.TLSALPN01 == nil && c.DNS01 == nil {
		return bad("no challenge configured: set HTTP01, TLSALPN01 or DNS01")
	}
	if h := c.HTTP01; h != nil {
		if h.Addr != "" && h.Webroot != "" {
			return bad("HTTP01: set Addr or Webroot, not both")
		}
		if h.Addr != "" {
			if _, _, err := net.SplitHostPort(h.Addr); err != nil {
				return bad("HTTP01.Addr %q: %v", h.Addr, err)
			}
		}
		if h.Webroot != "" {
			fi, err := os.Stat(h.Webroot)
			if err != nil {
				return bad("HTTP01.Webroot: %v", err)
			}
			if !fi.IsDir() {
				return bad("HTTP01.Webroot %q is not a directory", h.Webroot)
			}
		}
	}
	if t := c.TLSALPN01; t != nil {
		if t.Addr == "" {
			return bad("TLSALPN01.Addr is required")
		}
		if _, _, err := net.SplitHostPort(t.Addr); err != nil {
			return bad("TLSALPN01.Addr %q: %v", t.Addr, err)
		}
	}
	if d := c.DNS01; d != nil {
		if d.Provider == nil {
			return bad("DNS01.Provider is required")
		}
		for _, r := range d.Resolvers {
			if r == "" {
				return bad("DNS01.Resolvers: empty entry")
			}
		}
		if d.PropagationDelay < 0 || d.PropagationTimeout < 0 || d.PropagationInterval < 0 {
			return bad("DNS01: negative duration")
		}
	}
	if c.PollInterval < 0 || c.MaxPollInterval < 0 || c.ValidationTimeout < 0 || c.IssuanceTimeout < 0 || c.CleanupTimeout < 0 {
		return bad("negative duration")
	}
	if c.PollInterval > 0 && c.MaxPollInterval > 0 && c.PollInterval > c.MaxPollInterval {
		return bad("PollInterval %v exceeds MaxPollInterval %v", c.PollInterval, c.MaxPollInterval)
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
			return nil, fmt.Errorf("%w: CARootsPEM: load the system roots it adds to: %w", ErrConfig, err)
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
			return nil, fmt.Errorf("%w: block %d is a %q block, not a CERTIFICATE", ErrCARootsPEM, n, b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: block %d: %w", ErrCARootsPEM, n, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no PEM block in %d bytes", ErrCARootsPEM, len(data))
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
