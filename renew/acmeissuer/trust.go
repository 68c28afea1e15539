package acmeissuer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/renewkit/renewkit/renew"
)

// errServerTrust is wrapped by the error of an Issuer that could not
// verify the ACME server's TLS certificate: an unknown authority, a
// certificate for another host, or one outside its validity. The failure
// is local and deterministic (the roots this machine trusts, the directory
// URL, its clock), so the error is a *renew.LocalError naming the fix and
// is never retried: retrying cannot help, and the CA saw no request.
var errServerTrust = errors.New("the ACME server's TLS certificate is not trusted")

// errServerUnreachable is wrapped by the error of [Config.CheckServer]
// when no answer came from the ACME server: a refused or reset
// connection, a name that does not resolve, a timeout.
var errServerUnreachable = errors.New("the ACME server cannot be reached")

// trustError returns err as a *renew.LocalError wrapping errServerTrust
// when it is a failure to verify the server's TLS certificate, else nil.
func (c *Config) trustError(err error) error {
	var (
		unknown   x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
	)
	var fix string
	switch {
	case errors.As(err, &hostname):
		fix = fmt.Sprintf("the certificate is for other names than %s: check the server URL (%s)", hostname.Host, c.DirectoryURL)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		fix = "check this machine's clock (date -u), then the server's certificate"
	case errors.As(err, &unknown), errors.As(err, &verifyErr), errors.As(err, &invalid):
		fix = c.rootsFix()
	default:
		return nil
	}
	host := c.DirectoryURL
	if u, perr := url.Parse(c.DirectoryURL); perr == nil && u.Host != "" {
		host = u.Host
	}
	return &renew.LocalError{What: "ACME server " + host, Err: fmt.Errorf("%w: %w", errServerTrust, err), Fix: fix}
}

// rootsFix says which roots were trusted and what to change.
func (c *Config) rootsFix() string {
	src := c.CARootsSource
	if src == "" {
		src = "CARootsPEM"
	}
	switch {
	case c.HTTPClient != nil:
		return "the configured HTTPClient's Transport decides which roots are trusted: give it the CA that signed the server's certificate, or check the server URL (" + c.DirectoryURL + ")"
	case len(c.CARootsPEM) > 0:
		return "the server's certificate is signed by none of the roots in " + src + " nor by the system's: put the CA that signed it in " + src + " (for Pebble: pebble.minica.pem), or check the server URL (" + c.DirectoryURL + ")"
	case c.CARoots != nil:
		return "the server's certificate is signed by none of the roots in CARoots: add the CA that signed it, or check the server URL (" + c.DirectoryURL + ")"
	}
	return "the system roots do not trust the server's certificate: for a private or test CA set " + src + " to the CA that signed it, or check the server URL (" + c.DirectoryURL + ") and any TLS-intercepting proxy"
}

// CheckServer fetches the CA's directory once, with the TLS trust and
// proxy settings an Issuer would use, and returns nil when it answers with
// a JSON document. It is what a dry run calls to find, without ordering or
// creating anything, a server URL that is wrong, a server whose certificate
// this machine does not trust, or one that cannot be reached: each of the
// last two a *renew.LocalError (errors.Is renew.ErrLocal) naming the fix.
// Roots that cannot be used are a *renew.ConfigError (under
// renew.ErrConfig). It honours
// ctx.
func (c *Config) CheckServer(ctx context.Context) error {
	if c.HTTPClient != nil && (c.CARoots != nil || len(c.CARootsPEM) > 0) {
		return fmt.Errorf("%w: %w", renew.ErrConfig, &renew.ConfigError{Field: "HTTPClient", Err: errors.New("set HTTPClient or CARoots/CARootsPEM, not both")})
	}
	if _, err := parseRootsPEM(c.CARootsPEM); err != nil {
		return fmt.Errorf("%w: %w", renew.ErrConfig, &renew.ConfigError{Field: "CARootsPEM", Err: err})
	}
	cc := c.withDefaults()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cc.DirectoryURL, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", renew.ErrConfig, &renew.ConfigError{Field: "DirectoryURL", Err: err})
	}
	hc, err := cc.newHTTPClient()
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if terr := cc.trustError(err); terr != nil {
			return terr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &renew.LocalError{What: "ACME server " + cc.DirectoryURL, Err: fmt.Errorf("%w: %w", errServerUnreachable, err),
			Fix: "check the server URL, this machine's network and DNS, and any proxy it must use (HTTPS_PROXY)"}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ACME directory %s: HTTP %d: not an ACME server's directory (check the server URL)", cc.DirectoryURL, resp.StatusCode)
	}
	if len(body) == 0 || body[0] != '{' {
		return fmt.Errorf("ACME directory %s: the answer is not a JSON document: not an ACME server's directory (check the server URL)", cc.DirectoryURL)
	}
	return nil
}
