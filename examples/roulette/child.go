package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/served"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// childConfig is what the parent passes a renewal child, as JSON in one
// argument.
type childConfig struct {
	// Directory, CAFile and RootsFile: the CA's directory URL, the PEM of its
	// TLS certificate, and the PEM of its issuing roots.
	Directory, CAFile, RootsFile string
	// HTTP01 is where the CA validates HTTP-01.
	HTTP01 string
	// Root and AccountDir are the storage root and the ACME account's
	// directory.
	Root, AccountDir string
	// Name and Domains describe the lineage.
	Name    string
	Domains []string
	// HookLog is the deploy hook's reload log.
	HookLog string
	// Force renews even when not due.
	Force bool
}

// childResult is what a child that was not killed prints on standard
// output.
type childResult struct {
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

// child runs one renewal, as the renew-certificates CLI would: args[0] is a
// JSON childConfig. It logs to stderr (JSON) and prints a childResult.
func child(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "roulette child: want one JSON argument (this mode is run by roulette itself)")
		return 2
	}
	var cfg childConfig
	if err := json.Unmarshal([]byte(args[0]), &cfg); err != nil {
		fmt.Fprintf(stderr, "roulette child: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	ctx := context.Background()
	res, err := renewOnce(ctx, cfg, log)
	out := childResult{Outcome: string(res.Outcome)}
	if err != nil {
		out.Error = err.Error()
	}
	_ = json.NewEncoder(stdout).Encode(out)
	if err != nil || !res.Outcome.OK() || res.HookErr != nil {
		return 1
	}
	return 0
}

// renewOnce builds the Renewer and its ACME issuer and runs the lineage.
func renewOnce(ctx context.Context, cfg childConfig, log *slog.Logger) (renew.Result, error) {
	caPEM, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return renew.Result{}, err
	}
	rootsPEM, err := os.ReadFile(cfg.RootsFile)
	if err != nil {
		return renew.Result{}, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootsPEM) {
		return renew.Result{}, fmt.Errorf("%s: no certificate", cfg.RootsFile)
	}
	iss, err := acmeissuer.New(ctx, acmeissuer.Config{
		DirectoryURL: cfg.Directory,
		AgreeTOS:     true,
		AccountDir:   cfg.AccountDir,
		HTTP01:       &acmeissuer.HTTP01{Addr: cfg.HTTP01},
		Logger:       log.With("component", "acme"),
		CARootsPEM:   caPEM, // the parent's CA
	})
	if err != nil {
		return renew.Result{}, err
	}
	defer iss.Close()
	exe, err := os.Executable()
	if err != nil {
		return renew.Result{}, err
	}
	r := &renew.Renewer{
		Root:   cfg.Root,
		Issuer: iss,
		// Short waits: the CA is in the parent, and it does not fail.
		Retry:  backoff.Policy{Retries: 3, Initial: time.Millisecond, Multiplier: 2, Max: 10 * time.Millisecond},
		Logger: log,
		Roots:  roots,
	}
	res := r.Run(ctx, renew.Certificate{
		Name:    cfg.Name,
		Domains: cfg.Domains,
		// GORACE passes through so that a race-enabled build (the tests)
		// can switch off the race runtime's one-second sleep at exit.
		Hooks: []hooks.Hook{hooks.Command(exe, hookFlag, cfg.HookLog).WithTimeout(30 * time.Second).WithInheritEnv("GORACE")},
		Force: cfg.Force,
	})[0]
	if res.Err != nil {
		return res, res.Err
	}
	if res.HookErr != nil {
		return res, res.HookErr
	}
	return res, nil
}

// hook is the deploy hook: it reads the served files as a reloading web
// server would and appends a line to the reload log args[0].
func hook(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("roulette hook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "roulette hook: want the reload log's path (this mode is run by roulette's renewals)")
		return 2
	}
	if err := served.RecordReload(fs.Arg(0)); err != nil {
		fmt.Fprintf(stderr, "roulette hook: %v\n", err)
		return 1
	}
	return 0
}
