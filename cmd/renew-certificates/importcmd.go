package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/renewkit/renewkit/cmd/renew-certificates/internal/migrate"
)

// importFlags are the flags -import takes besides its own (-from, -yes).
var importFlags = []string{"import", "from", "yes", "config", "root", "server", "email", "account-dir", "ca-file", "log-format", "log-level"}

// checkImportFlags checks the -import command line: -from and -yes only
// with -import, which takes only importFlags.
func checkImportFlags(opts *options, set map[string]bool) error {
	if opts.importTool == "" {
		for _, f := range []string{"from", "yes"} {
			if set[f] {
				return fmt.Errorf("-%s is for -import", f)
			}
		}
		return nil
	}
	if opts.importTool != "certbot" && opts.importTool != "lego" {
		return fmt.Errorf("-import %q: want certbot or lego", opts.importTool)
	}
	for name := range set {
		if !slices.Contains(importFlags, name) {
			return fmt.Errorf("-import takes only -from, -yes, -config, -root, -server, -email, -account-dir, -ca-file, -log-format and -log-level, not -%s", name)
		}
	}
	return nil
}

// importMode is -import: it prints the plan and, with -yes, imports
// certbot's or lego's certificates and account (package migrate). Exit
// code: exitOK when every certificate found is imported or was already;
// exitFailed when one cannot be imported (the plan says why) or the import
// failed; exitUsage for a server flag that is not one.
func (a *app) importMode(ctx context.Context, opts *options) int {
	o := migrate.Options{
		Tool:   opts.importTool,
		From:   absFlag(opts.importFrom),
		Config: absFlag(opts.config),
		Roots:  a.roots,
		Logger: a.log,
		Now:    a.now,
		Yes:    opts.importYes,
	}
	ov := opts.overrides
	if ov.Server != nil {
		s, err := resolveServer(*ov.Server)
		if err != nil {
			fmt.Fprintf(a.stderr, "renew-certificates: -server: %v\n", err)
			return exitUsage
		}
		o.Server = s
	}
	if ov.Email != nil {
		o.Email = *ov.Email
	}
	if ov.Root != nil {
		o.Root = absFlag(*ov.Root)
	}
	if ov.AccountDir != nil {
		o.AccountDir = absFlag(*ov.AccountDir)
	}
	if ov.CAFile != nil {
		o.CAFile = absFlag(*ov.CAFile)
	}
	// An existing configuration's [files] apply to the lineages added to
	// it; one that does not load is reported as any run would.
	if _, err := os.Stat(o.Config); err == nil {
		cfg, err := loadConfig(o.Config, opts.overrides)
		if err != nil {
			a.configError(err)
			return exitUsage
		}
		o.Modes = cfg.Modes
	}
	rep, err := migrate.Import(ctx, o, a.stdout)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(a.stderr, "renew-certificates: -import %s: interrupted: %v\n", o.Tool, err)
			return exitInterrupted
		}
		fmt.Fprintf(a.stderr, "renew-certificates: -import %s: %v\n", o.Tool, err)
		return exitFailed
	}
	if len(rep.Failed) > 0 {
		fmt.Fprintf(a.stderr, "renew-certificates: -import %s: %d certificate(s) cannot be imported: %v (see above)\n", o.Tool, len(rep.Failed), rep.Failed)
		return exitFailed
	}
	return exitOK
}
