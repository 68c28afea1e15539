package migrate

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// Options configure Import. Every zero value is a documented default.
type Options struct {
	// Tool is "certbot" or "lego". Required.
	Tool string
	// From is the tool's directory: DefaultCertbotDir for certbot, ".lego"
	// (lego's default --path) for lego.
	From string
	// Server, when set, is the ACME directory URL whose lineages are
	// imported; lego needs it unless its account is Let's Encrypt's. By
	// default: the configuration's server when it exists, else the
	// server most of the tool's lineages use.
	Server string
	// Email picks one of several lego accounts for the server.
	Email string
	// Config is the renew-certificates configuration file written (or,
	// when it exists, appended to). Required.
	Config string
	// Root is the storage root; by default the configuration's, else
	// /var/lib/renewkit.
	Root string
	// AccountDir is the ACME account directory; by default the
	// configuration's, else acmeissuer.DefaultAccountDir(Root, server).
	AccountDir string
	// CAFile is written as ca_file (a private CA's TLS roots).
	CAFile string
	// Modes are the lineage files' modes and group (the configuration's
	// [files]); the zero value is atomicfs's default.
	Modes atomicfs.Modes
	// Yes imports; false prints the plan only (a dry run).
	Yes bool
	// Roots, when set, must contain a root every imported chain verifies to
	// (renew.Renewer.Roots); nil checks the chain link by link.
	Roots *x509.CertPool
	// Logger receives the library's records; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// systemdDirs, cronFiles and serverDirs are where the switch-over
	// checks look (nil: the system's); a test seam.
	systemdDirs, cronFiles, serverDirs []string
}

// DefaultRoot is renew-certificates' storage root unless configured.
const DefaultRoot = "/var/lib/renewkit"

// Report is what Import did, for the exit code.
type Report struct {
	// Imported, Skipped and Failed name the lineages of each kind
	// (Imported: would be, in a dry run).
	Imported, Skipped, Failed []string
}

// existingConfig is what Import reads of a configuration that exists.
type existingConfig struct {
	Server       string `toml:"server"`
	Root         string `toml:"root"`
	AccountDir   string `toml:"account_dir"`
	Certificates []struct {
		Name    string   `toml:"name"`
		Domains []string `toml:"domains"`
	} `toml:"certificate"`
}

// names returns the lineage names the configuration has.
func (c *existingConfig) names() map[string]bool {
	m := map[string]bool{}
	for _, cert := range c.Certificates {
		n := cert.Name
		if n == "" && len(cert.Domains) > 0 {
			n = cert.Domains[0]
		}
		m[n] = true
	}
	return m
}

// Read reads the state of tool ("certbot" or "lego") in dir. server and
// email narrow lego's accounts (see Options). It changes nothing.
func Read(tool, dir, server, email string) (*State, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r := reader{root: filepath.Clean(abs), euid: os.Geteuid()}
	if err := r.check(r.root, true); err != nil {
		return nil, err
	}
	switch tool {
	case "certbot":
		return readCertbot(r)
	case "lego":
		return readLego(r, server, email)
	}
	return nil, fmt.Errorf("-import %q: want certbot or lego", tool)
}

// Import reads the tool's state, prints the plan to out and, with Yes,
// imports: the account first (acmeissuer.Config.AdoptAccount), then each
// lineage (renew.Renewer.Adopt; its deploy hooks run once, as after a
// renewal), then the configuration, written last by one atomic rename. An
// error means nothing was imported (the tool's directory or the
// configuration cannot be read, the account cannot be adopted); a lineage
// that cannot be imported is in the Report's Failed, with its reason in
// the plan.
func Import(ctx context.Context, o Options, out io.Writer) (*Report, error) {
	if o.Config == "" {
		return nil, errors.New("migrate: Options.Config is required")
	}
	if o.From == "" {
		o.From = map[string]string{"certbot": DefaultCertbotDir, "lego": ".lego"}[o.Tool]
	}
	var cfg existingConfig
	cfgExists := false
	if b, err := os.ReadFile(o.Config); err == nil {
		if _, err := toml.Decode(string(b), &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Config, err)
		}
		cfgExists = true
		if o.Server == "" {
			o.Server = serverURL(cfg.Server)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	st, err := Read(o.Tool, o.From, o.Server, o.Email)
	if err != nil {
		return nil, err
	}
	if cfgExists && o.Server != serverURL(cfg.Server) {
		return nil, fmt.Errorf("%s is for the server %s, not %s: import into another configuration (-config, -root)", o.Config, cfg.Server, o.Server)
	}
	o.Root = cmp.Or(o.Root, cfg.Root, DefaultRoot)
	server := cmp.Or(o.Server, mostUsed(st.Lineages, func(l *Lineage) string { return l.Server }))
	o.AccountDir = cmp.Or(o.AccountDir, cfg.AccountDir, acmeissuer.DefaultAccountDir(o.Root, server))
	r := &renew.Renewer{Root: o.Root, Roots: o.Roots, Logger: o.Logger, Now: o.Now, Modes: o.Modes}

	// Which lineages, and the one account they share.
	inCfg := cfg.names()
	var todo []*Lineage
	rep := &Report{}
	for _, l := range st.Lineages {
		switch {
		case inCfg[l.Name]:
			rep.Skipped = append(rep.Skipped, l.Name)
			continue
		case l.Err == nil && l.Server != server:
			l.Err = fmt.Errorf("it renews at %s; this configuration is for %s: import it into another configuration (-server %s -config OTHER -root OTHER)", l.Server, server, l.Server)
		}
		if l.Err == nil {
			todo = append(todo, l)
		}
	}
	acctID := mostUsed(todo, func(l *Lineage) string { return l.Account })
	acct := st.Accounts[acctID]
	for _, l := range todo {
		if l.Account != acctID {
			l.Err = fmt.Errorf("it uses the account %s, the other lineages %s; one configuration has one account: import it into another configuration", l.Account, acctID)
		}
	}
	for _, l := range todo {
		if l.Err == nil {
			if err := r.VerifyExisting(certificate(l), l.Files); err != nil {
				l.Err = err
			}
		}
	}
	todo = slices.DeleteFunc(todo, func(l *Lineage) bool { return l.Err != nil })
	for _, l := range st.Lineages {
		if l.Err != nil && !inCfg[l.Name] {
			rep.Failed = append(rep.Failed, l.Name)
		}
	}

	p := &printer{w: out}
	mode := "dry run: nothing is written; run again with -yes to import"
	if o.Yes {
		mode = "importing"
	}
	p.f("Import from %s at %s (%s)\n\n", st.Tool, st.From, mode)
	ac := acmeissuer.Config{DirectoryURL: server, AccountDir: o.AccountDir, Logger: o.Logger}
	if acct != nil {
		ac.Email = acct.Email
		p.f("account:        %s at %s\n                %s → %s\n", acct.ID, acct.Server, acct.URL, o.AccountDir)
		if ac.HasAccount() {
			p.f("                (%s holds an account already: the import goes on only if it is this one)\n", o.AccountDir)
		}
	}
	state := "new"
	if cfgExists {
		state = "exists: certificates are appended"
	}
	p.f("configuration:  %s (%s)\nstorage root:   %s\n\n", o.Config, state, o.Root)
	for _, l := range st.Lineages {
		switch {
		case inCfg[l.Name]:
			p.f("  skip    %s: already in %s\n", l.Name, o.Config)
		case l.Err != nil:
			p.f("  cannot  %s: %v\n", l.Name, l.Err)
		default:
			p.f("  import  %s: %s, serial %s, expires %s, %s, %s\n", l.Name, strings.Join(l.Domains, " "), l.Serial, l.NotAfter.UTC().Format(time.DateOnly), l.KeyType, l.Challenge)
			for _, h := range l.Hooks {
				p.f("          hook: %s\n", strings.Join(h, " "))
			}
			for _, n := range l.Notes {
				p.f("          note: %s\n", n)
			}
		}
	}
	for _, l := range todo {
		rep.Imported = append(rep.Imported, l.Name)
	}
	if len(todo) == 0 {
		p.f("\nNothing to import.\n")
		return rep, p.err
	}
	if !o.Yes {
		p.f("\nWith -yes: the account and %d certificate(s) are imported, their deploy hooks run once, and %s is written. Nothing is ordered; nothing under %s changes.\n", len(todo), o.Config, st.From)
		switchOver(p, o, st, todo)
		return rep, p.err
	}

	// (1) The account, before any lineage: a lineage imported without it
	// would renew with a new account.
	if _, err := ac.AdoptAccount(ctx, acct.Key, acct.URL); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%s's account %s cannot join %s, which has an account of its own: import into another configuration and account directory (-config, -account-dir): %w", st.Tool, acct.ID, o.AccountDir, err)
		}
		return nil, fmt.Errorf("adopt the account %s into %s: %w", acct.ID, o.AccountDir, err)
	}
	// (2) The lineages.
	var done []*Lineage
	rep.Imported = nil
	for _, l := range todo {
		res := r.Adopt(ctx, certificate(l), l.Files)
		if res.Outcome != renew.Adopted {
			p.f("  failed  %s: %v\n", l.Name, res.Err)
			rep.Failed = append(rep.Failed, l.Name)
			continue
		}
		if res.HookErr != nil {
			p.f("  warning %s: a deploy hook failed (it is replayed by the next run): %v\n", l.Name, res.HookErr)
		}
		p.f("  imported %s: generation %d, renews from %s\n", l.Name, res.Generation, res.RenewAt.UTC().Format(time.DateTime))
		done = append(done, l)
		rep.Imported = append(rep.Imported, l.Name)
	}
	if len(done) == 0 {
		return rep, p.err
	}
	// (3) The configuration, last.
	if err := writeConfig(o, st, server, acct, cfgExists, done); err != nil {
		return rep, err
	}
	p.f("\nWrote %s.\n", o.Config)
	switchOver(p, o, st, done)
	return rep, p.err
}

// certificate is l as a renew.Certificate, for Adopt.
func certificate(l *Lineage) renew.Certificate {
	c := renew.Certificate{Name: l.Name, Domains: l.Domains, KeyType: l.KeyType}
	for _, h := range l.Hooks {
		c.Hooks = append(c.Hooks, hooks.Command(h...))
	}
	return c
}

// String describes the challenge for the plan.
func (c Challenge) String() string {
	switch {
	case c.Webroot != "":
		return c.Type + " webroot " + c.Webroot
	case c.Listen != "":
		return c.Type + " listener on " + c.Listen
	}
	return c.Type
}

// mostUsed returns the value of key most of ls have (ties: the first
// name's), "" for none.
func mostUsed(ls []*Lineage, key func(*Lineage) string) string {
	n := map[string]int{}
	best := ""
	for _, l := range ls {
		if l.Err != nil {
			continue
		}
		k := key(l)
		n[k]++
		if best == "" || n[k] > n[best] {
			best = k
		}
	}
	return best
}

// serverURL maps the configuration's server names to URLs.
func serverURL(s string) string {
	switch s {
	case "production":
		return letsEncrypt
	case "staging":
		return legoServers["acme-staging-v02.api.letsencrypt.org"]
	}
	return s
}

// printer writes the plan, keeping the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
