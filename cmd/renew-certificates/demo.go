package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// demoHookFlag is the hidden first argument that makes the program act as
// the demo's deploy hook (so the demo needs no shell and no other program).
const demoHookFlag = "-demo-hook"

// demoHookLog is the file, under the demo's root, the hook appends to.
const demoHookLog = "deploy-hook.log"

// demoOptions configure the demo.
type demoOptions struct {
	// root is the storage root; empty means a new temporary directory.
	root string
	// hookArgv returns the deploy hook's command line for a log file; nil
	// means demoHookArgv.
	hookArgv func(logFile string) ([]string, error)
}

// demoHookArgv is this executable in its hook mode. Under `go run` the
// executable is a temporary file that go removes when the demo exits, so
// that the -status and -dry-run commands the demo suggests would find the
// hook's program gone; it is then copied beside the log first.
func demoHookArgv(logFile string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program for the deploy hook: %w", err)
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		dst := filepath.Join(filepath.Dir(logFile), "renew-certificates")
		if err := copyExecutable(exe, dst); err != nil {
			return nil, fmt.Errorf("copy this program for the deploy hook: %w", err)
		}
		exe = dst
	}
	return []string{exe, demoHookFlag, logFile}, nil
}

// copyExecutable copies the program at src to a new file dst, mode 0755.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// demo runs the README's first command: an in-process ACME CA, two
// certificates issued with real HTTP-01 validation over loopback, a deploy
// hook, a second run that does nothing, and the status table.
func (a *app) demo(ctx context.Context, opts demoOptions) int {
	out := a.stdout
	fail := func(format string, args ...any) int {
		fmt.Fprintf(a.stderr, "renew-certificates -demo: "+format+"\n", args...)
		if ctx.Err() != nil {
			return ExitInterrupted
		}
		return ExitFailed
	}
	root, err := demoRoot(opts.root)
	if err != nil {
		fail("%v", err)
		return ExitUsage
	}
	start := time.Now()
	ca, err := acmetest.Start(acmetest.Options{
		// One profile, so that orders naming none get it (Pebble picks a
		// random one among several).
		Profiles: map[string]time.Duration{"shortlived": 0},
	})
	if err != nil {
		return fail("start the demo CA: %v", err)
	}
	defer ca.Close()

	hookArgv := opts.hookArgv
	if hookArgv == nil {
		hookArgv = demoHookArgv
	}
	argv, err := hookArgv(filepath.Join(root, demoHookLog))
	if err != nil {
		return fail("%v", err)
	}
	caFile := filepath.Join(root, "demo-ca.pem")
	if err := os.WriteFile(caFile, ca.TLSRootsPEM(), 0o644); err != nil {
		return fail("write the CA's certificate: %v", err)
	}
	cfgPath := filepath.Join(root, "renewkit.toml")
	if err := os.WriteFile(cfgPath, []byte(demoConfig(ca, caFile, root, argv)), 0o644); err != nil {
		return fail("write the configuration: %v", err)
	}
	cfg, err := LoadConfig(cfgPath, overrides{})
	if err != nil {
		return fail("the demo's own configuration is invalid: %v", err)
	}
	a.roots = ca.ChainRoots() // issued chains must verify to the demo CA

	fmt.Fprintf(out, "renewkit demo\n\n")
	fmt.Fprintf(out, "An ACME CA (Let's Encrypt's Pebble) is running inside this process at\n  %s\n", ca.DirectoryURL())
	fmt.Fprintf(out, "It validates HTTP-01 for real: it resolves every name to 127.0.0.1 and fetches\n")
	fmt.Fprintf(out, "the token from %s, where renewkit's built-in challenge server listens.\n", ca.HTTP01Addr())
	fmt.Fprintf(out, "Storage root: %s\nConfiguration: %s\n\n", root, cfgPath)

	// 1. Issue.
	fmt.Fprintf(out, "1. First run: no certificate is installed, so both are due.\n\n")
	code, results := a.renew(ctx, cfg, cfg.Certificates, "", false)
	writeResults(out, results)
	if code != ExitOK {
		return fail("the first run ended with exit code %d (see the log above)", code)
	}
	hookLines, _ := readLines(filepath.Join(root, demoHookLog))
	fmt.Fprintf(out, "\n   The deploy hook (%s) ran once per new certificate:\n", argv[0]+" "+demoHookFlag)
	for _, l := range hookLines {
		fmt.Fprintf(out, "     %s\n", l)
	}

	// 2. No-op.
	orders := ca.Stats().Orders
	fmt.Fprintf(out, "\n2. Second run, straight after: nothing is due.\n\n")
	code, results = a.renew(ctx, cfg, cfg.Certificates, "", false)
	writeResults(out, results)
	if code != ExitOK {
		return fail("the second run ended with exit code %d (see the log above)", code)
	}
	hookLines2, _ := readLines(filepath.Join(root, demoHookLog))
	fmt.Fprintf(out, "\n   Orders at the CA: %d before this run, %d after; deploy hook runs: %d before, %d after.\n",
		orders, ca.Stats().Orders, len(hookLines), len(hookLines2))

	// 3. Status.
	fmt.Fprintf(out, "\n3. The status table (what -status prints):\n\n")
	sts := a.renewer(cfg, nil, nil).Status(renewCerts(cfg.Certificates)...)
	writeStatusTable(indent(out), sts, a.clock())

	first := cfg.Certificates[0].Name
	fmt.Fprintf(out, "\nLook around (done in %s):\n", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(out, "  %s\n      the files a web server is configured with: links through current\n      to one complete generation (cert, chain, fullchain, privkey, combined)\n",
		filepath.Join(root, first, "{fullchain,privkey,combined}.pem"))
	fmt.Fprintf(out, "  %s\n      renewal state and the deploy-hook journal\n", filepath.Join(root, first, atomicfs.StateFile))
	fmt.Fprintf(out, "  %s\n      what the deploy hook recorded\n", filepath.Join(root, demoHookLog))
	fmt.Fprintf(out, "  %s\n      the configuration the demo used (its CA is gone once the demo exits,\n      but status and dry runs need no CA):\n", cfgPath)
	fmt.Fprintf(out, "        go run ./cmd/renew-certificates -config %s -status\n", cfgPath)
	fmt.Fprintf(out, "        go run ./cmd/renew-certificates -config %s -dry-run -force all\n", cfgPath)
	fmt.Fprintf(out, "\nThe demo's directory stays for you to look at: %s\nRemove it when done: rm -r %s\n", root, root)
	return ExitOK
}

// demoRoot returns root (which must be empty or missing) or a new
// temporary directory.
func demoRoot(root string) (string, error) {
	if root == "" {
		d, err := os.MkdirTemp("", "renewkit-demo-")
		if err != nil {
			return "", err
		}
		return d, nil
	}
	ents, err := os.ReadDir(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(root, 0o755); err != nil {
			return "", err
		}
	case err != nil:
		return "", err
	case len(ents) > 0:
		return "", fmt.Errorf("-root %s is not empty; give a new or empty directory (each demo has its own CA)", root)
	}
	return root, nil
}

// demoConfig is the configuration file the demo writes and then loads.
func demoConfig(ca *acmetest.CA, caFile, root string, hook []string) string {
	q := strconv.Quote
	argv := make([]string, len(hook))
	for i, s := range hook {
		argv[i] = q(s)
	}
	return fmt.Sprintf(`# Written by renew-certificates -demo. A real configuration looks the
# same, with server = "staging" or "production" (Let's Encrypt) or your
# CA's directory URL, and no ca_file.

server = %s  # the demo's in-process CA
ca_file = %s  # trust its TLS certificate
email = "demo@example.org"
agree_tos = true
root = %s

[defaults]
key_type = "ec256"
policy = "1/3"  # renew when a third of the lifetime is left
hooks = [[%s]]
hook_timeout = "30s"

[defaults.challenge]
type = "http-01"
listen = %s  # where the CA connects to validate

[[certificate]]
name = "example"
domains = ["example.test", "www.example.test"]

[[certificate]]
name = "api"
domains = ["api.example.test"]
`, q(ca.DirectoryURL()), q(caFile), q(root), strings.Join(argv, ", "), q(ca.HTTP01Addr()))
}

// writeResults prints one line per result.
func writeResults(w io.Writer, results []renew.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range results {
		detail := ""
		switch {
		case r.Err != nil:
			detail = oneLine(r.Err.Error())
		case r.Generation > 0:
			detail = fmt.Sprintf("generation %d, serial %s, expires %s", r.Generation, short(r.Serial), r.NotAfter.UTC().Format(timeFormat))
		}
		if r.Outcome == renew.NotDue && !r.RenewAt.IsZero() {
			detail += fmt.Sprintf("; renew at %s (%s)", r.RenewAt.UTC().Format(timeFormat), r.Reason)
		}
		fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\n", r.Name, r.Outcome, r.Duration.Round(time.Millisecond), detail)
	}
	tw.Flush()
}

// short cuts a hex serial for a table (-json and the logs have it whole).
func short(serial string) string {
	if len(serial) > 12 {
		return serial[:12] + "…"
	}
	return serial
}

// indent prefixes every line written to w with three spaces.
func indent(w io.Writer) io.Writer { return &indenter{w: w, bol: true} }

type indenter struct {
	w   io.Writer
	bol bool
}

func (in *indenter) Write(p []byte) (int, error) {
	var b []byte
	for _, c := range p {
		if in.bol && c != '\n' {
			b = append(b, "   "...)
		}
		b = append(b, c)
		in.bol = c == '\n'
	}
	if _, err := in.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// demoHook is the demo's deploy hook: it loads the installed certificate
// and key as a web server would on reload, appends a line to the log file
// named by args[0], and prints it.
func demoHook(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: renew-certificates %s LOGFILE (the demo's deploy hook)\n", demoHookFlag)
		return ExitUsage
	}
	name, gen, serial := os.Getenv("RENEWKIT_NAME"), os.Getenv("RENEWKIT_GENERATION"), os.Getenv("RENEWKIT_SERIAL")
	if name == "" {
		fmt.Fprintln(stderr, "demo hook: RENEWKIT_NAME is not set; this mode is run by renewkit as a deploy hook")
		return ExitUsage
	}
	if _, err := tls.LoadX509KeyPair(os.Getenv("RENEWKIT_FULLCHAIN"), os.Getenv("RENEWKIT_KEY")); err != nil {
		fmt.Fprintf(stderr, "demo hook: %s: certificate and key do not load: %v\n", name, err)
		return ExitFailed
	}
	line := fmt.Sprintf("%s  reloaded %s: generation %s, serial %s; fullchain.pem and privkey.pem load and match",
		time.Now().UTC().Format("15:04:05.000Z"), name, gen, short(serial))
	f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(stderr, "demo hook: %v\n", err)
		return ExitFailed
	}
	_, err = fmt.Fprintln(f, line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "demo hook: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintln(stdout, line)
	return ExitOK
}
