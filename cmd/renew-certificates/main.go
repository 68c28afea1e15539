package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/earlysignal"
	"github.com/renewkit/renewkit/internal/safefile"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// Exit codes. They are part of the program's interface: scripts, systemd
// and monitoring rely on them, so they never change meaning.
const (
	// exitOK: every certificate is fine: renewed, recovered, not due, or
	// being renewed by another run that holds its lock.
	exitOK = 0
	// exitFailed: at least one certificate failed (including one backing
	// off after earlier failures, one whose lock another process has held
	// for longer than any run takes, and deploy hooks that are still
	// failing), or the metrics file could not be written.
	exitFailed = 1
	// exitUsage: bad command line or configuration; nothing was done.
	exitUsage = 2
	// exitInterrupted: SIGTERM or SIGINT stopped the run; whatever was
	// begun is finished or rolled back by the next run.
	exitInterrupted = 3
)

// demoMoved is what -demo prints: the demo is a program of its own, so that
// this one links no test CA.
const demoMoved = `renew-certificates: the demo is a program of its own (this command links no test CA).
From a clone of the renewkit repository (https://github.com/renewkit/renewkit), run:
  go run ./examples/renew-certificates -demo
`

// defaultConfigPath is where -config points unless given.
const defaultConfigPath = "/etc/renewkit/config.toml"

func main() {
	// SIGTERM and SIGINT are caught from the first millisecond (the
	// package's init), not only from here: one that arrives while the
	// dependencies initialise still exits with exitInterrupted. After the
	// first signal the default action is back: a second one kills the
	// program at once (which renewkit survives too).
	ctx, stop := earlysignal.NotifyContext(context.Background())
	if os.Getenv("GOGC") == "" {
		// Collect at half the live heap's growth, not all of it: a run's
		// live heap is mostly the configuration and the results, and its
		// peak RSS, not its CPU, is what a large host notices (10,000
		// lineages: about 42 MiB instead of 48, the same CPU time).
		// GOGC set in the environment wins.
		debug.SetGCPercent(50)
	}
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program but for signals and os.Exit, so tests can call
// it in-process. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return (&app{stdout: stdout, stderr: stderr}).main(ctx, args)
}

// app is one invocation. Its unexported seams are for tests.
type app struct {
	stdout, stderr io.Writer
	// now, when set, is the Renewer's clock.
	now func() time.Time
	// roots, when set, is the Renewer's Roots: issued chains must verify
	// to one of them (a test's CA).
	roots *x509.CertPool
	// log is the logger, set by main.
	log *slog.Logger
	// configPath is the -config value, for the commands messages suggest.
	configPath string
}

// options are the parsed command line.
type options struct {
	config      string
	overrides   overrides
	certs       []string
	force       []string
	dryRun      bool
	status      bool
	demo        bool
	version     bool
	helpConfig  bool
	helpDNS     string
	logFormat   string
	logLevel    slog.Level
	metricsFile string
	serve       bool
	// noFleet runs this invocation as a single node although [fleet] is
	// configured; json makes -status print JSON.
	noFleet bool
	json    bool
	// reportOnly makes -status exit 0 when certificates need attention.
	reportOnly bool
	// importTool is -import ("certbot" or "lego"), importFrom -from and
	// importYes -yes.
	importTool, importFrom string
	importYes              bool
}

func (a *app) main(ctx context.Context, args []string) int {
	opts, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(a.stdout, usage)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "renew-certificates: %v\nRun renew-certificates -help for usage.\n", err)
		return exitUsage
	}
	if opts.version {
		fmt.Fprintln(a.stdout, versionString())
		return exitOK
	}
	if opts.helpDNS != "" {
		if err := writeDNSHelp(a.stdout, opts.helpDNS); err != nil {
			fmt.Fprintln(a.stderr, err)
			return exitUsage
		}
		return exitOK
	}
	if opts.helpConfig {
		fmt.Fprint(a.stdout, configReference())
		return exitOK
	}
	if opts.demo {
		fmt.Fprint(a.stderr, demoMoved)
		return exitUsage
	}
	a.log = newLogger(a.stderr, opts.logFormat, opts.logLevel)
	// lego logs through one process-wide logger, to stdout by default.
	acmeissuer.SetLegoLogger(a.log.With("component", "lego"))
	if m := opts.metricsFile; m != "" && !strings.HasSuffix(m, ".prom") {
		a.log.Warn("node_exporter's textfile collector reads only files whose names end in .prom; it will ignore this one", "metrics_file", m)
	}

	if opts.importTool != "" {
		return a.importMode(ctx, opts)
	}
	cfg, err := loadConfig(opts.config, opts.overrides)
	if err != nil {
		a.configError(err)
		return exitUsage
	}
	certs, err := selectCerts(cfg, opts.certs, opts.force)
	if err != nil {
		fmt.Fprintf(a.stderr, "renew-certificates: %v\n", err)
		return exitUsage
	}
	a.configPath = opts.config
	if opts.noFleet && cfg.Fleet == nil {
		fmt.Fprintf(a.stderr, "renew-certificates: -no-fleet: %s has no [fleet] section\n", cfg.Path)
		return exitUsage
	}
	switch {
	case opts.status:
		return a.statusMode(ctx, cfg, certs, opts)
	case opts.dryRun:
		return a.dryRunMode(ctx, cfg, certs, opts.noFleet)
	case opts.serve:
		return a.serveMode(ctx, opts, cfg, certs)
	}
	code, _ := a.renew(ctx, cfg, certs, opts.metricsFile, opts.noFleet)
	return code
}

// configError prints a configuration error, one problem a line.
func (a *app) configError(err error) {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) == 1 {
		fmt.Fprintf(a.stderr, "renew-certificates: invalid configuration: %s\n", lines[0])
		return
	}
	fmt.Fprintf(a.stderr, "renew-certificates: invalid configuration (%d problems):\n", len(lines))
	for _, l := range lines {
		fmt.Fprintf(a.stderr, "  %s\n", l)
	}
}

// parseFlags parses args. It prints nothing: errors are returned, and
// flag.ErrHelp for -help.
func parseFlags(args []string) (*options, error) {
	opts := &options{}
	fs := flag.NewFlagSet("renew-certificates", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}

	fs.StringVar(&opts.config, "config", defaultConfigPath, "")
	var certs, force, logLevel string
	fs.StringVar(&certs, "cert", "", "")
	fs.StringVar(&force, "force", "", "")
	fs.BoolVar(&opts.dryRun, "dry-run", false, "")
	fs.BoolVar(&opts.status, "status", false, "")
	fs.BoolVar(&opts.demo, "demo", false, "")
	fs.BoolVar(&opts.version, "version", false, "")
	fs.BoolVar(&opts.helpConfig, "help-config", false, "")
	fs.StringVar(&opts.helpDNS, "help-dns", "", "")
	fs.StringVar(&opts.logFormat, "log-format", "text", "")
	fs.StringVar(&logLevel, "log-level", "info", "")
	fs.StringVar(&opts.metricsFile, "metrics-file", "", "")
	fs.BoolVar(&opts.serve, "serve", false, "")
	fs.BoolVar(&opts.noFleet, "no-fleet", false, "")
	fs.BoolVar(&opts.json, "json", false, "")
	fs.BoolVar(&opts.reportOnly, "report-only", false, "")
	fs.StringVar(&opts.importTool, "import", "", "")
	fs.StringVar(&opts.importFrom, "from", "", "")
	fs.BoolVar(&opts.importYes, "yes", false, "")
	var listen string
	fs.StringVar(&listen, "listen", "", "")

	var server, email, root, accountDir, caFile string
	var agreeTOS bool
	var keep, concurrency int
	fs.StringVar(&server, "server", "", "")
	fs.StringVar(&email, "email", "", "")
	fs.BoolVar(&agreeTOS, "agree-tos", false, "")
	fs.StringVar(&root, "root", "", "")
	fs.StringVar(&accountDir, "account-dir", "", "")
	fs.StringVar(&caFile, "ca-file", "", "")
	fs.IntVar(&keep, "keep", 0, "")
	fs.IntVar(&concurrency, "concurrency", 0, "")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	ov := &opts.overrides
	if set["server"] {
		ov.Server = &server
	}
	if set["email"] {
		ov.Email = &email
	}
	if set["agree-tos"] {
		ov.AgreeTOS = &agreeTOS
	}
	if set["root"] {
		if root == "" {
			return nil, errors.New("-root: empty path")
		}
		ov.Root = &root
	}
	if set["account-dir"] {
		ov.AccountDir = &accountDir
	}
	if set["ca-file"] {
		ov.CAFile = &caFile
	}
	if set["keep"] {
		ov.Keep = &keep
	}
	if set["concurrency"] {
		ov.Concurrency = &concurrency
	}
	if set["listen"] {
		ov.Listen = &listen
	}
	opts.certs = splitList(certs)
	opts.force = splitList(force)
	if set["force"] && len(opts.force) == 0 {
		return nil, errors.New("-force: want certificate names or \"all\"")
	}
	if set["cert"] && len(opts.certs) == 0 {
		return nil, errors.New("-cert: want certificate names")
	}
	if err := opts.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", logLevel)
	}
	switch opts.logFormat {
	case "text", "json":
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", opts.logFormat)
	}

	modes := 0
	for _, m := range []string{"dry-run", "status", "demo", "version", "help-config", "help-dns", "serve", "import"} {
		if set[m] {
			modes++
		}
	}
	if modes > 1 {
		return nil, errors.New("-dry-run, -status, -demo, -version, -help-config, -help-dns, -serve and -import exclude each other")
	}
	if err := serveFlags(opts, set); err != nil {
		return nil, err
	}
	if err := checkImportFlags(opts, set); err != nil {
		return nil, err
	}
	if opts.status && set["force"] {
		return nil, errors.New("-force makes no sense with -status (try -dry-run)")
	}
	if opts.json && !opts.status {
		return nil, errors.New("-json is for -status")
	}
	if opts.reportOnly && !opts.status {
		return nil, errors.New("-report-only is for -status")
	}
	if opts.noFleet && opts.serve {
		return nil, errors.New("-no-fleet is for one run at a time (one-shot, -dry-run, -status), not -serve: a node that orders alone must not keep doing so")
	}
	if opts.dryRun && set["metrics-file"] {
		return nil, errors.New("-dry-run writes nothing, not even -metrics-file")
	}
	return opts, nil
}

// splitList splits a comma-separated list, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// selectCerts applies -cert and -force to the configured certificates. With
// neither it returns cfg.Certificates itself, which callers must not modify.
func selectCerts(cfg *config, only, force []string) ([]certConfig, error) {
	byName := make(map[string]int, len(cfg.Certificates))
	for i, c := range cfg.Certificates {
		byName[c.Name] = i
	}
	check := func(flagName string, names []string) error {
		for _, n := range names {
			if n == "all" && flagName == "force" {
				continue
			}
			if _, ok := byName[n]; !ok {
				return fmt.Errorf("-%s: no certificate named %q in %s", flagName, n, cfg.Path)
			}
		}
		return nil
	}
	if err := check("cert", only); err != nil {
		return nil, err
	}
	if err := check("force", force); err != nil {
		return nil, err
	}
	if len(only) == 0 && len(force) == 0 {
		// The timer's run: every certificate as configured, not copied
		// (copies with their append growth cost megabytes at 10,000).
		return cfg.Certificates, nil
	}
	forceAll := slices.Contains(force, "all")
	var out []certConfig
	for _, c := range cfg.Certificates {
		if len(only) > 0 && !slices.Contains(only, c.Name) {
			continue
		}
		c.Force = forceAll || slices.Contains(force, c.Name)
		out = append(out, c)
	}
	return out, nil
}

// newLogger returns a text or JSON logger on w. Durations are seconds (a
// float) in JSON, Go duration strings ("1.5s") in text; in text, values
// spanning several lines (joined errors) are kept on one line, their
// lines separated by "; ", instead of showing a literal \n.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: jsonAttr}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: textAttr}))
}

// jsonAttr writes durations as seconds.
func jsonAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key, a.Value.Duration().Seconds())
	}
	return a
}

// textAttr keeps multi-line values on one line.
func textAttr(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch a.Value.Kind() {
	case slog.KindString:
		s = a.Value.String()
	case slog.KindAny:
		err, ok := a.Value.Any().(error)
		if !ok {
			return a
		}
		s = err.Error()
	default:
		return a
	}
	if !strings.Contains(s, "\n") {
		return a
	}
	return slog.String(a.Key, strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' }), "; "))
}

// version and revision describe the build when the linker sets them, as
// the Dockerfile does (-ldflags "-X main.version=V -X main.revision=R"): a
// container build has no VCS metadata (.git is not in its context). Empty
// in a plain go build, whose module version and VCS revision come from
// the build information instead. Never assigned at run time.
var version, revision string

// versionString describes the build: the version and the VCS revision
// (set at link time, else from the build information), the Go version and
// the DNS providers compiled in.
func versionString() string {
	return fmt.Sprintf("%s; %d DNS providers (lego %s): %s", buildDescription(version, revision), len(providerNames()), legoVersion, strings.Join(providerNames(), ", "))
}

// buildDescription is "renew-certificates VERSION REVISION GOVERSION", with
// ver and rev (the linker's) taking precedence over the build information.
func buildDescription(ver, rev string) string {
	v, extra := "(devel)", ""
	dirty := false
	goVersion := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		goVersion = bi.GoVersion
	}
	if ver != "" {
		v = ver
	}
	if rev != "" {
		extra += " " + rev[:min(12, len(rev))]
		if dirty {
			extra += "+dirty"
		}
	}
	if goVersion != "" {
		extra += " " + goVersion
	}
	return "renew-certificates " + v + extra
}

// renewer builds the Renewer for cfg.
func (a *app) renewer(cfg *config, iss renew.Issuer, obs renew.Observer) *renew.Renewer {
	return &renew.Renewer{
		Root:           cfg.Root,
		Issuer:         iss,
		Retry:          cfg.Retry,
		Logger:         a.log,
		Observer:       obs,
		Concurrency:    cfg.Concurrency,
		Keep:           cfg.Keep,
		LockStuckAfter: cfg.LockStuckAfter,
		Roots:          a.roots,
		Modes:          cfg.Modes,
		Now:            a.now,
	}
}

// renew is the default mode: run every selected certificate. It returns
// the exit code and the results. The metrics file, when asked for, is
// written whatever happens once the configuration is valid.
func (a *app) renew(ctx context.Context, cfg *config, certs []certConfig, metricsFile string, noFleet bool) (code int, results []renew.Result) {
	if err := ctx.Err(); err != nil {
		a.log.Warn("interrupted before starting", "error", err)
		return exitInterrupted, nil
	}
	var m *metricsSink
	var obs renew.Observer
	if metricsFile != "" {
		m = newMetricsSink(metricsFile)
		obs = m.collector
		defer func() {
			if results == nil {
				// The run did not start: describe the lineages from disk.
				m.prime(a.renewer(cfg, nil, nil), renewCerts(cfg.Certificates))
			}
			if err := m.write(); err != nil {
				a.log.Error("could not write the metrics file", "path", metricsFile, "error", err)
				if code == exitOK {
					code = exitFailed
				}
			}
		}()
	}
	if err := makeRoot(cfg); err != nil {
		fmt.Fprintf(a.stderr, "renew-certificates: %v\n", err)
		return exitFailed, nil
	}
	// Before anything is created under the root (the account directory):
	// a run that is refused leaves nothing behind.
	if err := a.checkRoot(cfg); err != nil {
		fmt.Fprintf(a.stderr, "renew-certificates: %v\n", err)
		return exitFailed, nil
	}
	iss, err := newIssuers(ctx, cfg, certs, a.log, false)
	if err != nil {
		if ctx.Err() != nil {
			return exitInterrupted, nil
		}
		a.configError(err)
		return exitUsage, nil
	}
	defer func() {
		if err := iss.Close(); err != nil {
			a.log.Warn("closing the ACME issuers", "error", err)
		}
	}()
	r := a.renewer(cfg, iss, obs)
	closeFleet, err := a.attachFleet(cfg, r, noFleet)
	if err != nil {
		a.configError(err)
		return exitUsage, nil
	}
	defer closeFleet()
	if m != nil {
		m.prime(r, renewCerts(cfg.Certificates))
	}
	start := time.Now()
	results = r.Run(ctx, renewCerts(certs)...)
	a.logSummary(results, time.Since(start))
	a.reportDeferred(cfg, results)
	for _, res := range results {
		if res.Outcome == renew.BackingOff {
			a.log.Warn("backing off after earlier failures; once the cause is fixed, retry now with -force",
				"name", res.Name, "until", res.RetryNotBefore, "command", a.command("-force", res.Name))
		}
	}
	if ctx.Err() != nil {
		// A signal during the run: whatever it cut short (deploy hooks
		// after an install, say) is finished by the next run.
		return exitInterrupted, results
	}
	return exitCode(results), results
}

// summaryOrder is the order of the outcome counts in the run's summary.
var summaryOrder = []renew.Outcome{renew.Renewed, renew.Recovered, renew.NotDue, renew.Locked,
	renew.Deferred, renew.BackingOff, renew.LockStuck, renew.Failed, renew.Interrupted}

// logSummary writes the run's one Info record (msg=run): how many
// certificates ended how (outcomes that no certificate had are left out),
// the earliest time one of them becomes due, and how long the run took.
// Each certificate has its own record too, at Debug when it was not due
// (see renew.Renewer.Logger): a timer's run over thousands of lineages
// writes one line when nothing happened.
func (a *app) logSummary(results []renew.Result, took time.Duration) {
	if !a.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	counts := make(map[renew.Outcome]int, len(summaryOrder))
	var next renew.Result
	for _, res := range results {
		counts[res.Outcome]++
		if !res.RenewAt.IsZero() && (next.RenewAt.IsZero() || res.RenewAt.Before(next.RenewAt)) {
			next = res
		}
	}
	attrs := make([]slog.Attr, 0, len(summaryOrder)+4)
	attrs = append(attrs, slog.Int("certificates", len(results)))
	for _, o := range summaryOrder {
		if n := counts[o]; n > 0 {
			attrs = append(attrs, slog.Int(string(o), n))
			delete(counts, o)
		}
	}
	for _, o := range slices.Sorted(maps.Keys(counts)) { // an outcome added to renew later
		attrs = append(attrs, slog.Int(string(o), counts[o]))
	}
	if !next.RenewAt.IsZero() {
		attrs = append(attrs, slog.Time("next_renew_at", next.RenewAt), slog.String("next_name", next.Name))
	}
	attrs = append(attrs, slog.Duration("duration", took))
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "run", attrs...)
}

// command is the command line that runs this program with the same
// configuration file and args.
func (a *app) command(args ...string) string {
	cmd := "renew-certificates"
	if a.configPath != "" && a.configPath != defaultConfigPath {
		cmd += " -config " + a.configPath
	}
	return cmd + " " + strings.Join(args, " ")
}

// makeRoot creates the storage root here, readable by all, rather than
// letting the account directory's MkdirAll (0700) do it; a lineage's own
// modes are atomicfs's. Durably: a power loss must not take the root's
// entry, and with it every lineage installed under it on the first run.
// The error names the key's line and, where it can, the owner and the fix.
func makeRoot(cfg *config) error {
	if err := durable.MkdirAll(cfg.Root, 0o755); err != nil {
		if lerr := renew.CheckWritableDir("storage root", cfg.Root, false); lerr != nil {
			err = lerr
		}
		return fmt.Errorf("%s: %w", cfg.where("root"), err)
	}
	return nil
}

// checkRoot is the Renewer's check of the storage root (its owner, its
// mode), located at the root key, made before anything is created under
// it. Only a problem of this machine (a *renew.LocalError) is reported
// here; the rest is the run's to report.
func (a *app) checkRoot(cfg *config) error {
	err := a.renewer(cfg, nil, nil).CheckRoot()
	if !errors.Is(err, renew.ErrLocal) {
		return nil
	}
	return fmt.Errorf("%s: %w", cfg.where("root"), err)
}

// exitCode maps results to the exit code: interrupted wins, then failed.
func exitCode(results []renew.Result) int {
	code := exitOK
	for _, res := range results {
		switch {
		case res.Outcome == renew.Interrupted:
			return exitInterrupted
		case !res.Outcome.OK() || res.HookErr != nil:
			code = exitFailed
		}
	}
	return code
}

func renewCerts(cs []certConfig) []renew.Certificate {
	out := make([]renew.Certificate, len(cs))
	for i, c := range cs {
		out[i] = c.Certificate
	}
	return out
}

// statusMode prints the status table (or, with -json, the same as JSON):
// the local state of each lineage from disk and, in fleet mode, the
// fleet's records of them from one etcd range read. It is a Nagios-style
// check: a certificate that needs attention (see attention: a failed
// issuance, backing off, hooks pending, a foreign file in place of a
// stable link, close to expiry), a fleet that cannot be read and a fleet
// record no node can use make the exit code 1, a [fleet] seal key or TLS
// file that cannot be used 2; the state is shown either way. With
// -report-only, 1 becomes 0.
func (a *app) statusMode(ctx context.Context, cfg *config, certs []certConfig, opts *options) int {
	r := a.renewer(cfg, nil, nil)
	sts := r.Status(renewCerts(certs)...)
	now := a.clock()
	code := exitOK
	for _, s := range sts {
		if len(attention(s, now)) > 0 {
			code = exitFailed
		}
	}
	var fv *fleetStatus
	if cfg.Fleet != nil && !opts.noFleet {
		fv = &fleetStatus{endpoints: cfg.Fleet.Endpoints}
		fv.snap, fv.node, fv.account, fv.err = a.fleetView(ctx, cfg, certs)
		var ce *configProblem
		switch {
		case errors.As(fv.err, &ce):
			// A seal key or TLS file that cannot be used: the local state
			// is still worth showing.
			code = exitUsage
		case fv.err != nil && ctx.Err() != nil:
			return exitInterrupted
		case fv.err != nil:
			code = exitFailed
		default:
			for _, st := range fv.snap.States {
				if st.Err != nil {
					code = exitFailed // a record no node can use
				}
			}
			if fv.account.problem {
				code = exitFailed // an account key no run can use
			}
		}
	}
	if opts.json {
		writeStatusJSON(a.stdout, sts, fv, now)
	} else {
		writeStatusTable(a.stdout, sts, now)
		writeFleetTable(a.stdout, sts, fv, now)
	}
	if opts.metricsFile != "" {
		m := newMetricsSink(opts.metricsFile)
		m.collector.Track(renewCerts(certs)...)
		m.collector.ObserveStatus(sts...)
		if err := m.write(); err != nil {
			a.log.Error("could not write the metrics file", "path", opts.metricsFile, "error", err)
			code = exitFailed
		}
	}
	if opts.reportOnly && code == exitFailed {
		return exitOK
	}
	return code
}

// dryRunMode prints what a run would do, changing nothing, then runs the
// preflight checks a run makes before ordering, for every selected
// certificate (due or not), and reports every problem: configuration
// problems (exit 2: credentials, agree_tos) and problems of this machine
// (exit 1: a webroot, a port, a hook program, a directory, a CA server
// whose TLS certificate is not trusted or that does not answer). It
// contacts the CA only to fetch its directory once (no account, no order);
// for a webroot certificate it fetches a probe file from each name's port
// 80, as the CA will (acmeissuer.HTTP01.SelfCheck: exit 1 when the web
// server does not serve the webroot there); the only traces it leaves are
// probe files it removes at once and ports it binds and closes.
//
// In fleet mode it also checks the seal key files (as a run loads them)
// and reads the fleet's records once: a seal key or TLS file that cannot
// be used is a configuration problem (exit 2), etcd not answering a
// problem of the moment (exit 1); the problem names the key and the fix.
func (a *app) dryRunMode(ctx context.Context, cfg *config, certs []certConfig, noFleet bool) int {
	r := a.renewer(cfg, nil, nil)
	sts := r.Status(renewCerts(certs)...)
	writeDryRun(a.stdout, sts, a.clock(), a.command)
	code := exitOK
	for _, s := range sts {
		if s.Err != nil {
			code = exitFailed
		}
	}
	iss, err := newIssuers(ctx, cfg, certs, a.log, true)
	if err != nil {
		a.configError(err)
		code = exitUsage
	}
	if iss != nil {
		r.Issuer = iss
	}
	problems := 0
	if len(certs) > 0 {
		if msg := a.checkServer(ctx, cfg); msg != "" {
			problems++
			fmt.Fprintf(a.stdout, "server: problem: %s\n", msg)
			code = max(code, exitFailed)
		}
		if ctx.Err() != nil {
			return exitInterrupted
		}
	}
	if cfg.Fleet != nil && noFleet {
		fmt.Fprintln(a.stdout, "fleet: not consulted (-no-fleet): a run with -no-fleet orders what is due on this node alone, with its own key")
	}
	if cfg.Fleet != nil && !noFleet {
		n, fcode := a.dryRunFleet(ctx, cfg, certs, r)
		if ctx.Err() != nil {
			return exitInterrupted
		}
		problems += n
		code = max(code, fcode)
	}
	failed := map[string]bool{}
	for _, c := range certs {
		err := r.Preflight(ctx, c.Certificate)
		if err == nil {
			continue
		}
		failed[c.Name] = true
		for line := range strings.SplitSeq(err.Error(), "\n") {
			problems++
			fmt.Fprintf(a.stdout, "%s: problem: %s\n", c.Name, line)
		}
		if ctx.Err() != nil {
			return exitInterrupted
		}
		code = max(code, exitFailed)
	}
	n, scode := a.dryRunSelfCheck(ctx, certs, failed)
	if ctx.Err() != nil {
		return exitInterrupted
	}
	problems += n
	code = max(code, scode)
	if problems > 0 {
		noun := "problems"
		if problems == 1 {
			noun = "problem"
		}
		fmt.Fprintf(a.stderr, "renew-certificates: the dry run found %d %s a run would fail on (listed on standard output)\n", problems, noun)
	}
	return code
}

// dryRunSelfCheck runs acmeissuer's HTTP self-check for every webroot
// certificate whose preflight passed (skip names those that failed): a
// probe file written under the webroot and fetched, as the CA will, from
// http://NAME/.well-known/acme-challenge/ for each name. It prints one line
// per name and returns the problems found and exit 1 if any.
func (a *app) dryRunSelfCheck(ctx context.Context, certs []certConfig, skip map[string]bool) (int, int) {
	problems, code := 0, exitOK
	for _, c := range certs {
		if c.Challenge.Type != challengeHTTP01 || c.Challenge.Webroot == "" || skip[c.Name] {
			continue
		}
		h := &acmeissuer.HTTP01{Webroot: c.Challenge.Webroot}
		res := h.SelfCheck(ctx, c.Domains)
		if ctx.Err() != nil {
			return problems, exitInterrupted
		}
		for _, d := range c.Domains {
			err, ok := res[d]
			switch {
			case !ok:
				continue // a wildcard: DNS-01 only
			case err == nil:
				fmt.Fprintf(a.stdout, "%s: webroot self-check: http://%s/.well-known/acme-challenge/ serves %s: ok\n", c.Name, d, c.Challenge.Webroot)
			default:
				problems++
				code = exitFailed
				fmt.Fprintf(a.stdout, "%s: problem: %s\n", c.Name, err)
			}
		}
	}
	return problems, code
}

// checkServer fetches the CA's directory once, trusting what a run would
// trust, and returns the problem found ("" for none): a server certificate
// this machine does not trust (naming ca_file or the system roots), a
// server that does not answer, or one that is not an ACME server. An
// unreadable ca_file is the configuration check's to report.
func (a *app) checkServer(ctx context.Context, cfg *config) string {
	sc := acmeissuer.Config{DirectoryURL: cfg.DirectoryURL, CARootsSource: "ca_file " + cfg.CAFile + " (" + cfg.where("ca_file") + ")"}
	if cfg.CAFile != "" {
		pem, err := safefile.ReadFileFollow(cfg.CAFile, maxSecretFileSize)
		if err != nil {
			return ""
		}
		sc.CARootsPEM = pem
	}
	err := sc.CheckServer(ctx)
	switch {
	case err == nil, ctx.Err() != nil, errors.Is(err, renew.ErrConfig):
		return "" // ErrConfig: a ca_file that is no PEM bundle, reported with the configuration
	}
	return cfg.where("server") + ": " + err.Error()
}

func (a *app) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}
