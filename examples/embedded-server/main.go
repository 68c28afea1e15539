// Command embedded-server is an HTTPS server that renews its own
// certificate: a renew.Renewer runs in-process in its long-running mode
// (Serve) and a renew.CertSource hands the current generation to crypto/tls,
// so a new certificate is served from the next handshake on, without a
// restart and without a failed handshake.
//
// Usage:
//
//	embedded-server -server https://acme-staging-v02.api.letsencrypt.org/directory \
//	    -email ops@example.com -agree-tos -domains example.com,www.example.com \
//	    -root /var/lib/embedded-server -listen :443 -http01 :80
//
//	embedded-server -demo    # against the embedded test CA, 30-second certificates
//
// The Renewer writes its lineage under -root exactly as the
// renew-certificates CLI does, so both can share a storage root (the
// lineage lock keeps them from renewing the same certificate at once).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
	"github.com/renewkit/renewkit/renew/acmetest"
)

// config is what the server needs; flags fill it.
type config struct {
	Server   string // ACME directory URL
	CARoots  []byte // PEM roots trusted for the ACME server, besides the system's
	Email    string
	AgreeTOS bool
	Domains  []string
	Profile  string
	Root     string
	Listen   string // HTTPS address
	HTTP01   string // HTTP-01 listener address
	Logger   *slog.Logger
	// ready, when set, receives the HTTPS listener's address once serving.
	ready func(addr string)
	// roots, when set, must contain the root of every issued chain.
	roots *x509.CertPool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(realMain(ctx, os.Args[1:], os.Stderr))
}

func realMain(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("embedded-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var domains string
	demo := fs.Bool("demo", false, "run against the embedded test CA with 30-second certificates")
	fs.StringVar(&cfg.Server, "server", "", "ACME directory URL (required unless -demo)")
	caFile := fs.String("ca-file", "", "PEM file of extra roots to trust for the ACME server")
	fs.StringVar(&cfg.Email, "email", "", "ACME account contact")
	fs.BoolVar(&cfg.AgreeTOS, "agree-tos", false, "agree to the CA's terms of service")
	fs.StringVar(&domains, "domains", "", "comma-separated names for the certificate (required)")
	fs.StringVar(&cfg.Profile, "profile", "", "ACME profile")
	fs.StringVar(&cfg.Root, "root", "", "storage root (required unless -demo)")
	fs.StringVar(&cfg.Listen, "listen", ":8443", "HTTPS listen address")
	fs.StringVar(&cfg.HTTP01, "http01", ":80", "HTTP-01 challenge listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	for _, d := range strings.Split(domains, ",") {
		if d = strings.TrimSpace(d); d != "" {
			cfg.Domains = append(cfg.Domains, d)
		}
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintln(stderr, "embedded-server: -ca-file:", err)
			return 2
		}
		cfg.CARoots = pem
	}
	if *demo {
		ca, err := acmetest.Start(acmetest.Options{Profiles: map[string]time.Duration{"demo": 30 * time.Second}})
		if err != nil {
			fmt.Fprintln(stderr, "embedded-server: start test CA:", err)
			return 1
		}
		defer ca.Close()
		cfg.Server, cfg.CARoots, cfg.AgreeTOS, cfg.Profile, cfg.HTTP01 = ca.DirectoryURL(), ca.TLSRootsPEM(), true, "demo", ca.HTTP01Addr()
		cfg.roots = ca.ChainRoots()
		if len(cfg.Domains) == 0 {
			cfg.Domains = []string{"localhost.example.test"}
		}
		if cfg.Root == "" {
			dir, err := os.MkdirTemp("", "embedded-server-demo-")
			if err != nil {
				fmt.Fprintln(stderr, "embedded-server:", err)
				return 1
			}
			cfg.Root = dir
		}
		cfg.ready = func(addr string) {
			cfg.Logger.Info("serving; try: curl -vk https://"+addr+"/ (the serial changes every ~20 s)", "root", cfg.Root)
		}
	}
	if cfg.Server == "" || cfg.Root == "" || len(cfg.Domains) == 0 {
		fmt.Fprintln(stderr, "embedded-server: -server, -root and -domains are required (or use -demo)")
		fs.Usage()
		return 2
	}
	if err := run(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "embedded-server:", err)
		return 1
	}
	return 0
}

// run obtains the certificate if needed, then serves HTTPS with it while
// the Renewer keeps it fresh, until ctx ends.
func run(ctx context.Context, cfg config) error {
	iss, err := acmeissuer.New(ctx, acmeissuer.Config{
		DirectoryURL: cfg.Server,
		Email:        cfg.Email,
		AgreeTOS:     cfg.AgreeTOS,
		AccountDir:   accountDir(cfg.Root, cfg.Server),
		CARootsPEM:   cfg.CARoots,
		HTTP01:       &acmeissuer.HTTP01{Addr: cfg.HTTP01},
		Logger:       cfg.Logger,
	})
	if err != nil {
		return err
	}
	defer iss.Close()
	r := &renew.Renewer{Root: cfg.Root, Issuer: iss, Logger: cfg.Logger, Roots: cfg.roots}
	cert := renew.Certificate{Name: "server", Domains: cfg.Domains, Profile: cfg.Profile}

	// The first run makes sure there is a certificate to serve.
	if res := r.Run(ctx, cert)[0]; !res.Outcome.OK() {
		return fmt.Errorf("no certificate: %w", res.Err)
	}
	src, err := renew.NewCertSource(0, filepath.Join(cfg.Root, cert.Name))
	if err != nil {
		return err
	}
	// Reload the source the moment a new generation is current.
	cert.Hooks = []hooks.Hook{src.Hook()}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			serial := "unknown"
			if c, err := src.GetCertificate(&tls.ClientHelloInfo{ServerName: req.TLS.ServerName}); err == nil && c.Leaf != nil {
				serial = fmt.Sprintf("%x", c.Leaf.SerialNumber)
			}
			fmt.Fprintf(w, "hello; this server's certificate serial is %s\n", serial)
		}),
		TLSConfig:         &tls.Config{GetCertificate: src.GetCertificate, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	go func() { errc <- r.Serve(ctx, cert) }()
	if cfg.ready != nil {
		cfg.ready(ln.Addr().String())
	}
	// Whichever ends first (ctx, the server failing) ends both.
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	shutCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = srv.Shutdown(shutCtx)
	n := 2
	if first != nil {
		n = 1
	}
	for range n {
		if err := <-errc; first == nil {
			first = err
		}
	}
	if errors.Is(first, http.ErrServerClosed) || errors.Is(first, context.Canceled) {
		first = nil
	}
	return first
}

// accountDir is the ACME account directory: the CLI's default
// (acmeissuer.DefaultAccountDir), unless ROOT/.account, where earlier
// versions of this example kept the account, exists. Moving silently would
// register a second account and orphan the first, and an order journaled
// under the first could no longer be resumed (a wasted issuance).
func accountDir(root, server string) string {
	if old := filepath.Join(root, ".account"); (&acmeissuer.Config{AccountDir: old}).HasAccount() {
		return old
	}
	return acmeissuer.DefaultAccountDir(root, server)
}
