package acmeissuer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/renewkit/renewkit/renew"
)

// Compile-time check: the Renewer calls Preflight before ordering.
var _ renew.Preflighter = (*Issuer)(nil)

// preflighter is what a challenge.Provider (e.g. a DNS provider) may
// implement to check its own set-up (credentials, reachability of its
// server) before an order.
type preflighter interface {
	Preflight(ctx context.Context) error
}

// Preflight checks, on this machine and without contacting the CA, what an
// order with this configuration needs, and returns every problem found
// (joined), each a *[renew.LocalError] naming the fix:
//
//   - AccountDir can be created, or is a directory this process can write
//     (a probe file is created and removed);
//   - HTTP01.Webroot exists and its .well-known/acme-challenge directory
//     can be written the way the webroot solver writes it (a probe file,
//     or a probe directory where the directory does not exist yet), and
//     neither it nor .well-known is a symbolic link another user owns;
//   - HTTP01.Addr and TLSALPN01.Addr can be bound (they are bound and
//     closed at once; a busy port's error names the process holding it
//     where /proc tells);
//   - DNS01.Provider's own Preflight(ctx) error method, if it has one.
//
// It creates nothing that outlives the call. It is what a dry run calls;
// [Issuer.Preflight] makes the same checks for a live Issuer.
func (c *Config) Preflight(ctx context.Context) error {
	var errs []error
	errs = append(errs, renew.CheckWritableDir("account directory", c.AccountDir, false))
	if h := c.HTTP01; h != nil {
		errs = append(errs, checkWebroot(h.Webroot))
		if h.Addr != "" {
			errs = append(errs, checkBind(ctx, h.Addr, false))
		}
	}
	if t := c.TLSALPN01; t != nil && t.Addr != "" {
		errs = append(errs, checkBind(ctx, t.Addr, true))
	}
	errs = append(errs, c.providerPreflight(ctx))
	return errors.Join(errs...)
}

// Preflight implements [renew.Preflighter]: the checks of
// [Config.Preflight] for this Issuer, which the Renewer runs before every
// order. The challenge listeners are bound here, for real, and kept for the
// orders that follow (until [Issuer.Close]), so that no other process can
// take the port between the check and the challenge.
func (i *Issuer) Preflight(ctx context.Context, _ renew.IssueRequest) error {
	if i.isClosed() {
		return errClosed
	}
	var errs []error
	errs = append(errs, renew.CheckWritableDir("account directory", i.cfg.AccountDir, false))
	if h := i.cfg.HTTP01; h != nil {
		errs = append(errs, checkWebroot(h.Webroot))
	}
	for _, s := range []*lazyServer{i.httpSrv, i.alpnSrv} {
		if s == nil {
			continue
		}
		if err := s.ensure(ctx); err != nil {
			if oe, ok := errors.AsType[*net.OpError](err); ok {
				err = oe.Err // "bind: address already in use"; the address is named below
			}
			errs = append(errs, bindError(s.addr, s.tlsConfig != nil, err))
		}
	}
	errs = append(errs, i.cfg.providerPreflight(ctx))
	return errors.Join(errs...)
}

// providerPreflight calls the DNS provider's Preflight, if it has one.
func (c *Config) providerPreflight(ctx context.Context) error {
	d := c.DNS01
	if d == nil || d.Provider == nil {
		return nil
	}
	p, ok := d.Provider.(preflighter)
	if !ok {
		return nil
	}
	err := p.Preflight(ctx)
	if err == nil || errors.Is(err, renew.ErrLocal) || ctx.Err() != nil {
		return err
	}
	return &renew.LocalError{What: fmt.Sprintf("DNS provider %T", d.Provider), Err: err,
		Fix: "check the provider's credentials and server settings"}
}

// checkWebroot checks that the webroot exists and that the solver can
// write its challenge directory.
func checkWebroot(webroot string) error {
	if webroot == "" {
		return nil
	}
	fi, err := os.Stat(webroot)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &renew.LocalError{What: "webroot " + webroot, Err: errors.New("does not exist"),
			Fix: "set webroot to the directory your web server serves at / for these names (e.g. nginx's root), or create it"}
	case err != nil:
		return &renew.LocalError{What: "webroot " + webroot, Err: err}
	case !fi.IsDir():
		return &renew.LocalError{What: "webroot " + webroot, Err: errors.New("is not a directory"),
			Fix: "set webroot to the directory your web server serves at / for these names"}
	}
	if _, err := checkChallengeLinks(webroot); err != nil {
		return err // a symbolic link another user planted
	}
	return renew.CheckWritableDir("webroot challenge directory", filepath.Join(webroot, ".well-known", "acme-challenge"), true)
}

// checkBind binds addr and closes it at once.
func checkBind(ctx context.Context, addr string, tlsALPN bool) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		if oe, ok := errors.AsType[*net.OpError](err); ok {
			err = oe.Err
		}
		return bindError(addr, tlsALPN, err)
	}
	return ln.Close()
}

// bindError makes a failure to bind a challenge listener a *renew.LocalError
// that names the fix, and, for a busy port, the process holding it.
func bindError(addr string, tlsALPN bool, err error) error {
	what := "http-01 listen address " + addr
	if tlsALPN {
		what = "tls-alpn-01 listen address " + addr
	}
	e := &renew.LocalError{What: what, Err: err}
	_, portStr, _ := net.SplitHostPort(addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		holder := portHolder(portStr)
		if holder != "" {
			e.Err = fmt.Errorf("%w (the port is held by %s)", err, holder)
		}
		e.Fix = "stop what holds the port, or let it answer the challenges instead: a web server that already serves port " + portStr +
			" can serve a webroot (http-01 with webroot), and a service that embeds a built-in listener should get its certificates from that service rather than from a second program binding the same port"
	case errors.Is(err, syscall.EACCES):
		e.Fix = "ports below 1024 need root or CAP_NET_BIND_SERVICE: under systemd add AmbientCapabilities=CAP_NET_BIND_SERVICE to the service"
	}
	return e
}

// DefaultAccountDir is where an account for the CA at directoryURL lives
// under a storage root unless configured otherwise: ROOT/.acme/HOST-HASH,
// HOST being the directory's host and port and HASH a short digest of the
// whole URL (two CAs may share a host). The renew-certificates command uses
// it as its default too, so a service and the command sharing one root
// share one account.
func DefaultAccountDir(root, directoryURL string) string {
	u, err := url.Parse(directoryURL)
	host := "acme"
	if err == nil && u.Host != "" {
		host = strings.NewReplacer(":", "_", "[", "", "]", "").Replace(u.Host)
	}
	sum := sha256.Sum256([]byte(directoryURL))
	return filepath.Join(root, ".acme", host+"-"+hex.EncodeToString(sum[:4]))
}

// HasAccount reports whether c.AccountDir holds an ACME account from an
// earlier run (its key or its record), so that creating one, which needs
// AgreeTOS at CAs that publish terms, will not be needed. A directory that
// cannot be read counts as holding one: its own problem is reported by
// Preflight. It only stats; it contacts no CA.
func (c *Config) HasAccount() bool {
	for _, f := range []string{accountKeyFile, accountRecordFile} {
		if _, err := os.Stat(filepath.Join(c.AccountDir, f)); !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}
