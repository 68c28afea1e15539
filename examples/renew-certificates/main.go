// Command renew-certificates (this directory) is renewkit's demo: a full
// renewal, with nothing installed and nothing leaving the machine, written
// with the library alone so that it also shows how a program uses it:
//
//	go run ./examples/renew-certificates -demo [-root DIR]
//
// It starts an ACME CA inside the process (package renew/acmetest, Let's
// Encrypt's Pebble on loopback), makes an acmeissuer.Issuer whose built-in
// HTTP-01 listener answers the CA's validation requests, and runs a
// renew.Renewer over two certificates with a deploy hook written in Go
// (hooks.Func): a first run issues both and runs the hook, a second run
// finds nothing due and orders nothing, and Renewer.Status gives the
// table that renew-certificates -status prints.
//
// The command of the same name that a systemd timer runs (configuration
// file, DNS providers, fleet mode, metrics) is in cmd/renew-certificates;
// it links no test CA.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// Exit codes: those of cmd/renew-certificates.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the program but for signals and os.Exit; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("renew-certificates-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demo := fs.Bool("demo", false, "run the demo (required: this program is only the demo)")
	root := fs.String("root", "", "storage root: a new or empty `directory` (default: a new temporary directory)")
	verbose := fs.Bool("v", false, "log the Renewer's records (Info and above) to standard error")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if !*demo || fs.NArg() > 0 {
		fmt.Fprint(stderr, "usage: go run ./examples/renew-certificates -demo [-root DIR] [-v]\n\n"+
			"This program is renewkit's demo only. The renew-certificates command that\n"+
			"renews the certificates of a configuration file is cmd/renew-certificates:\n"+
			"  go build -o renew-certificates ./cmd/renew-certificates\n")
		return exitUsage
	}
	dir, err := demoRoot(*root)
	if err != nil {
		fmt.Fprintf(stderr, "renew-certificates demo: %v\n", err)
		return exitUsage
	}
	level := slog.LevelWarn // the demo narrates; records would clutter it
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := demoRun(ctx, dir, stdout, logger); err != nil {
		fmt.Fprintf(stderr, "renew-certificates demo: %v\n", err)
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return exitFailed
	}
	return exitOK
}

// demoRun is the demo proper, in the storage root dir.
func demoRun(ctx context.Context, dir string, out io.Writer, logger *slog.Logger) error {
	start := time.Now()
	// The CA: one profile, so that orders naming none get it (Pebble picks
	// a random one among several).
	ca, err := acmetest.Start(acmetest.Options{Profiles: map[string]time.Duration{"shortlived": 0}})
	if err != nil {
		return fmt.Errorf("start the demo CA: %w", err)
	}
	defer ca.Close()

	// The Issuer: IssuerConfig trusts the CA's TLS certificate, agrees to
	// its terms and binds the built-in HTTP-01 listener where the CA
	// connects. A real program sets DirectoryURL, Email and AgreeTOS
	// (and CARootsPEM for a private CA) itself.
	cfg := ca.IssuerConfig(filepath.Join(dir, "account"))
	cfg.Email = "demo@example.org"
	cfg.Logger = logger
	iss, err := acmeissuer.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("ACME issuer: %w", err)
	}
	defer iss.Close()

	r := &renew.Renewer{
		Root:   dir,
		Issuer: iss,
		Logger: logger,
		Roots:  ca.ChainRoots(), // issued chains must verify to the demo CA
	}
	hookLog := filepath.Join(dir, "deploy-hook.log")
	hook := hooks.Func("demo-reload", func(_ context.Context, ev hooks.Event) error {
		return reload(ev, hookLog, out)
	})
	certs := []renew.Certificate{
		{Name: "example", Domains: []string{"example.test", "www.example.test"}, Hooks: []hooks.Hook{hook}},
		{Name: "api", Domains: []string{"api.example.test"}, Hooks: []hooks.Hook{hook}},
	}

	fmt.Fprintf(out, "renewkit demo\n\n")
	fmt.Fprintf(out, "An ACME CA (Let's Encrypt's Pebble) is running inside this process at\n  %s\n", ca.DirectoryURL())
	fmt.Fprintf(out, "It validates HTTP-01 for real: it resolves every name to 127.0.0.1 and fetches\n")
	fmt.Fprintf(out, "the token from %s, where the Issuer's built-in challenge listener is.\n", ca.HTTP01Addr())
	fmt.Fprintf(out, "Storage root: %s\n\n", dir)

	fmt.Fprintf(out, "1. First run: no certificate is installed, so both are due.\n")
	fmt.Fprintf(out, "   The deploy hook runs once per new certificate:\n\n")
	if err := results(out, r.Run(ctx, certs...)); err != nil {
		return fmt.Errorf("the first run: %w", err)
	}
	orders := ca.Stats().Orders
	hookRuns := countLines(hookLog)

	fmt.Fprintf(out, "\n2. Second run, straight after: nothing is due.\n\n")
	if err := results(out, r.Run(ctx, certs...)); err != nil {
		return fmt.Errorf("the second run: %w", err)
	}
	fmt.Fprintf(out, "\n   Orders at the CA: %d before this run, %d after; deploy hook runs: %d before, %d after.\n",
		orders, ca.Stats().Orders, hookRuns, countLines(hookLog))

	fmt.Fprintf(out, "\n3. Renewer.Status, read from disk alone (what renew-certificates -status prints):\n\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "   NAME\tGENERATION\tEXPIRES\tRENEW AT\n")
	for _, s := range r.Status(certs...) {
		if s.Err != nil {
			return fmt.Errorf("status of %s: %w", s.Name, s.Err)
		}
		fmt.Fprintf(tw, "   %s\t%d\t%s\t%s (%s)\n", s.Name, s.Generation, stamp(s.NotAfter), stamp(s.RenewAt), s.Reason)
	}
	tw.Flush()

	fmt.Fprintf(out, "\nLook around (done in %s):\n", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(out, "  %s\n      the files a web server is configured with: links through current\n      to one complete generation (cert, chain, fullchain, privkey, combined)\n",
		filepath.Join(dir, certs[0].Name, "{fullchain,privkey,combined}.pem"))
	fmt.Fprintf(out, "  %s\n      what the deploy hook recorded\n", hookLog)
	fmt.Fprintf(out, "  examples/renew-certificates/main.go\n      this program: an acmeissuer.Issuer, a renew.Renewer, a hooks.Func\n")
	fmt.Fprintf(out, "\nThe demo's directory stays for you to look at: %s\nRemove it when done: rm -r %s\n", dir, dir)
	return nil
}

// results prints one line per result and returns an error if one failed.
func results(out io.Writer, res []renew.Result) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	var errs []error
	for _, r := range res {
		detail := ""
		switch {
		case r.Err != nil:
			detail = r.Err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, r.Err))
		case r.Generation > 0:
			detail = fmt.Sprintf("generation %d, serial %s, expires %s", r.Generation, short(r.Serial), stamp(r.NotAfter))
		}
		if r.HookErr != nil {
			errs = append(errs, fmt.Errorf("%s: deploy hook: %w", r.Name, r.HookErr))
		}
		if r.Outcome == renew.NotDue {
			detail += fmt.Sprintf("; renew at %s (%s)", stamp(r.RenewAt), r.Reason)
		}
		fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\n", r.Name, r.Outcome, r.Duration.Round(time.Millisecond), detail)
	}
	tw.Flush()
	return errors.Join(errs...)
}

// reload is the demo's deploy hook: it loads the installed certificate and
// key as a web server would on reload, and records a line in logFile and
// on out.
func reload(ev hooks.Event, logFile string, out io.Writer) error {
	if _, err := tls.LoadX509KeyPair(filepath.Join(ev.Dir, "fullchain.pem"), filepath.Join(ev.Dir, "privkey.pem")); err != nil {
		return fmt.Errorf("certificate and key of %s do not load: %w", ev.Lineage, err)
	}
	line := fmt.Sprintf("reloaded %s: generation %d, serial %s; fullchain.pem and privkey.pem load and match",
		ev.Lineage, ev.Generation, short(ev.Serial))
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "     hook: %s\n", line)
	return nil
}

// demoRoot returns root (which must be empty or missing) or a new
// temporary directory.
func demoRoot(root string) (string, error) {
	if root == "" {
		return os.MkdirTemp("", "renewkit-demo-")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	ents, err := os.ReadDir(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return root, os.MkdirAll(root, 0o755)
	case err != nil:
		return "", err
	case len(ents) > 0:
		return "", fmt.Errorf("-root %s is not empty; give a new or empty directory (each demo has its own CA)", root)
	}
	return root, nil
}

// countLines counts the lines of a file; a missing file has none.
func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// short cuts a hex serial for a table.
func short(serial string) string {
	if len(serial) > 12 {
		return serial[:12] + "…"
	}
	return serial
}
