package acmeissuer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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

// namesPreflighter is what a DNS provider may implement to check its
// set-up for the names of one certificate (their record names), as
// NewRFC2136's provider does. Issuer.Preflight prefers it to preflighter.
type namesPreflighter interface {
	PreflightNames(ctx context.Context, names []string) error
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
// The default challenges and every entry of Routes are checked (an
// address or a provider shared by several once). It creates nothing that
// outlives the call. It is what a dry run calls; [Issuer.Preflight] makes
// the same checks for one certificate of a live Issuer.
func (c *Config) Preflight(ctx context.Context) error {
	var errs []error
	errs = append(errs, renew.CheckWritableDir("account directory", c.AccountDir, false))
	seen := map[string]bool{}
	check := func(ch Challenges) {
		if h := ch.HTTP01; h != nil {
			if h.Webroot != "" && !seen["webroot "+h.Webroot] {
				seen["webroot "+h.Webroot] = true
				errs = append(errs, checkWebroot(h.Webroot))
			}
			if h.Addr != "" && !seen["addr "+h.Addr] {
				seen["addr "+h.Addr] = true
				errs = append(errs, checkBind(ctx, h.Addr, false))
			}
		}
		if t := ch.TLSALPN01; t != nil && t.Addr != "" && !seen["addr "+t.Addr] {
			seen["addr "+t.Addr] = true
			errs = append(errs, checkBind(ctx, t.Addr, true))
		}
		if d := ch.DNS01; d != nil && d.Provider != nil {
			k := fmt.Sprintf("provider %p", d.Provider)
			if !seen[k] {
				seen[k] = true
				errs = append(errs, providerPreflight(ctx, d, nil))
			}
		}
	}
	check(c.defaultChallenges())
	for _, name := range slices.Sorted(maps.Keys(c.Routes)) {
		check(c.Routes[name])
	}
	return errors.Join(errs...)
}

// Preflight implements [renew.Preflighter]: the checks of
// [Config.Preflight] for the challenges of the certificate req.Name (its
// entry in Config.Routes, else the default), which the Renewer runs before
// every order. The challenge listeners are bound here, for real, and kept
// for the orders that follow (until [Issuer.Close]), so that no other
// process can take the port between the check and the challenge.
func (i *Issuer) Preflight(ctx context.Context, req renew.IssueRequest) error {
	if i.isClosed() {
		return errClosed
	}
	var errs []error
	errs = append(errs, renew.CheckWritableDir("account directory", i.cfg.AccountDir, false))
	rt, ok := i.routes[req.Name]
	if !ok {
		rt = i.def
	}
	switch {
	case rt == nil:
		errs = append(errs, &renew.LocalError{What: fmt.Sprintf("certificate %q", req.Name),
			Err: errors.New("no ACME challenge is configured for it"), Fix: "add it to acmeissuer.Config.Routes, or configure a default challenge"})
		return errors.Join(errs...)
	}
	if h := rt.ch.HTTP01; h != nil {
		errs = append(errs, checkWebroot(h.Webroot))
	}
	for _, s := range rt.servers {
		if err := s.ensure(ctx); err != nil {
			if oe, ok := errors.AsType[*net.OpError](err); ok {
				err = oe.Err // "bind: address already in use"; the address is named below
			}
			errs = append(errs, bindError(s.addr, s.tlsConfig != nil, err))
		}
	}
	if d := rt.ch.DNS01; d != nil {
		errs = append(errs, providerPreflight(ctx, d, req.Domains))
	}
	return errors.Join(errs...)
}

// providerPreflight calls the DNS provider's PreflightNames(ctx, names)
// when it has one and names are known, else its Preflight(ctx), if any.
// An error it does not classify itself is made a *renew.LocalError; one
// that does not come from this machine (its server does not answer) is
// the provider's to classify, as the order's Present would.
func providerPreflight(ctx context.Context, d *DNS01, names []string) error {
	var err error
	if p, ok := d.Provider.(namesPreflighter); ok && len(names) > 0 {
		err = p.PreflightNames(ctx, names)
	} else if p, ok := d.Provider.(preflighter); ok {
		err = p.Preflight(ctx)
	}
	if err == nil || errors.Is(err, renew.ErrLocal) || ctx.Err() != nil {
		return err
	}
	return &renew.LocalError{What: providerName(d), Err: err,
		Fix: "check the provider's credentials and server settings"}
}

// checkWebroot checks that the webroot exists and that the solver can
// write its challenge directory.
func checkWebroot(webroot string) error {
	if webroot == "" {
		return nil
	}
	if err := webrootExists(webroot); err != nil {
		return err
	}
	if _, err := checkChallengeLinks(webroot); err != nil {
		return err // a symbolic link another user planted
	}
	return renew.CheckWritableDir("webroot challenge directory", filepath.Join(webroot, ".well-known", "acme-challenge"), true)
}

// webrootExists checks that the webroot is a directory.
func webrootExists(webroot string) error {
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
	return nil
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

// providerName names a DNS-01 provider in messages: DNS01.ProviderName,
// else its String method, else "DNS-01 provider".
func providerName(d *DNS01) string {
	if d.ProviderName != "" {
		return "DNS-01 provider " + d.ProviderName
	}
	if s, ok := d.Provider.(fmt.Stringer); ok {
		return "DNS-01 provider " + s.String()
	}
	return "DNS-01 provider"
}
