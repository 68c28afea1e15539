package main

import (
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/renewkit/renewkit/fleet"
)

// fleetFile is the [fleet] section as written. Its presence turns fleet
// mode on: the machines listing the same endpoints and prefix share their
// certificates through etcd (see the README's "More than one server").
type fleetFile struct {
	Endpoints       []string  `toml:"endpoints"`
	CAFile          string    `toml:"ca_file"`
	CertFile        string    `toml:"cert_file"`
	KeyFile         string    `toml:"key_file"`
	Prefix          *string   `toml:"prefix"`
	SealKeyFile     string    `toml:"seal_key_file"`
	OldSealKeyFiles []string  `toml:"old_seal_key_files"`
	Node            string    `toml:"node"`
	LockTTL         *duration `toml:"lock_ttl"`
	RequestTimeout  *duration `toml:"request_timeout"`
}

// maxNodeName bounds [fleet] node: it is written into lock values and
// records, and shown by -status.
const maxNodeName = 253

// fleet checks the [fleet] section and maps it onto fleet.Config (nil when
// the section is absent). Files are only checked to be absolute paths
// here; their content and modes are checked when the client is dialled
// (and by -dry-run).
func (v *validator) fleet(f *fleetFile) *fleet.Config {
	if f == nil {
		return nil
	}
	fc := &fleet.Config{
		CAFile:          f.CAFile,
		CertFile:        f.CertFile,
		KeyFile:         f.KeyFile,
		SealKeyFile:     f.SealKeyFile,
		OldSealKeyFiles: f.OldSealKeyFiles,
		Node:            f.Node,
	}
	if len(f.Endpoints) == 0 {
		v.at("fleet.endpoints", "fleet: endpoints is required: the client URLs of every etcd member, e.g. [\"https://10.0.0.1:2379\", \"https://10.0.0.2:2379\"]")
	}
	tlsFiles := f.CAFile != "" || f.CertFile != "" || f.KeyFile != ""
	seen := map[string]bool{}
	for _, ep := range f.Endpoints {
		u, err := url.Parse(ep)
		host := ""
		if err == nil {
			host = u.Host
		}
		_, port, perr := net.SplitHostPort(host)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || perr != nil || port == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "":
			v.at("fleet.endpoints", "fleet: endpoint %q: want http(s)://HOST:PORT, e.g. \"https://10.0.0.1:2379\"", ep)
			continue
		case u.Scheme == "http" && tlsFiles:
			v.at("fleet.endpoints", "fleet: endpoint %q is http:// although ca_file, cert_file or key_file is set: use https:// (certificates and locks would travel in clear)", ep)
		}
		if seen[ep] {
			v.at("fleet.endpoints", "fleet: endpoint %q is listed twice", ep)
		}
		seen[ep] = true
		fc.Endpoints = append(fc.Endpoints, ep)
	}
	for _, p := range []struct{ key, val string }{
		{"ca_file", f.CAFile}, {"cert_file", f.CertFile}, {"key_file", f.KeyFile}, {"seal_key_file", f.SealKeyFile},
	} {
		if p.val != "" && !filepath.IsAbs(p.val) {
			v.at("fleet."+p.key, "fleet: %s %q must be an absolute path", p.key, p.val)
		}
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		v.at("fleet", "fleet: set both cert_file and key_file (the node's etcd client certificate and key), or neither")
	}
	if f.SealKeyFile == "" {
		v.at("fleet.seal_key_file", "fleet: seal_key_file is required: the 32-byte key (e.g. from `openssl rand -hex 32`, mode 0600) that seals private keys before they reach etcd, the same on every node")
	}
	for _, p := range f.OldSealKeyFiles {
		switch {
		case !filepath.IsAbs(p):
			v.at("fleet.old_seal_key_files", "fleet: old_seal_key_files: %q must be an absolute path", p)
		case p == f.SealKeyFile:
			v.at("fleet.old_seal_key_files", "fleet: old_seal_key_files lists seal_key_file %q itself", p)
		}
	}
	if f.Prefix != nil {
		fc.Prefix = *f.Prefix
		if !strings.HasPrefix(fc.Prefix, "/") || strings.ContainsFunc(fc.Prefix, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			v.at("fleet.prefix", "fleet: prefix %q must start with \"/\" and contain no spaces or control characters (default %q)", fc.Prefix, fleet.DefaultPrefix)
		}
	}
	if n := f.Node; n != "" {
		if len(n) > maxNodeName || strings.ContainsFunc(n, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
			v.at("fleet.node", "fleet: node %q must be at most %d printable characters without spaces (default: the host name)", n, maxNodeName)
		}
	}
	if d := f.LockTTL; d != nil {
		fc.LockTTL = time.Duration(*d)
		if fc.LockTTL < time.Second || fc.LockTTL%time.Second != 0 {
			v.at("fleet.lock_ttl", "fleet: lock_ttl %v must be whole seconds, at least 1s (default %v)", fc.LockTTL, fleet.DefaultLockTTL)
		}
	}
	if d := f.RequestTimeout; d != nil {
		fc.RequestTimeout = time.Duration(*d)
		if fc.RequestTimeout <= 0 {
			v.at("fleet.request_timeout", "fleet: request_timeout must be positive (default %v)", fleet.DefaultRequestTimeout)
		}
		// A connection attempt is bounded likewise.
		fc.DialTimeout = fc.RequestTimeout
	}
	return fc
}
