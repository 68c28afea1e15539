package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/renewkit/renewkit/internal/safefile"
	"github.com/renewkit/renewkit/renew"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults for the zero values of [Config].
const (
	DefaultPrefix         = "/renewkit/"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultLockTTL        = 30 * time.Second
)

// Config says how a node reaches the fleet's etcd cluster. Every zero value
// has a stated default; Endpoints and SealKeyFile are required.
type Config struct {
	// Endpoints are the etcd client URLs, e.g. "https://10.0.0.1:2379". All
	// members should be listed: the client fails over between them.
	Endpoints []string

	// CAFile is a PEM file of the CA certificates that sign the etcd servers'
	// certificates. Empty means the system pool when an endpoint is https, and
	// plain TCP when none is (only for tests and loopback: keys are sealed,
	// but certificates and locks travel in clear).
	CAFile string
	// CertFile and KeyFile are the node's client certificate and key (PEM),
	// for etcd's --client-cert-auth; the certificate's CN is the etcd user
	// that RBAC checks (see the package doc). Both or neither. KeyFile must be
	// a regular file owned by this user and not readable by group or others.
	CertFile, KeyFile string

	// DialTimeout bounds establishing a connection. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds every call to etcd this package makes (each
	// method derives a context with this timeout from the caller's); on
	// expiry the call fails with [ErrUnavailable]. Zero means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration

	// Prefix is the etcd key prefix of this fleet's records: all keys this
	// package reads and writes start with Prefix + "v1/". Zero means
	// DefaultPrefix. A trailing "/" is added when missing.
	Prefix string

	// Node names this node in lock values and records (lockfile.HeldError.Node,
	// Generation.IssuedBy). Zero means the host name.
	Node string

	// LockTTL is the lease time of the fleet locks: a holder that stops
	// renewing its lease (killed, paused, partitioned) loses its locks this
	// long after its last keep-alive. Whole seconds; zero means
	// DefaultLockTTL. etcd may raise a TTL below its minimum (about 1.5x the
	// election timeout).
	LockTTL time.Duration

	// SealKeyFile holds the 32-byte key that seals private keys before they
	// are stored in etcd (see [LoadSealer] for the format). Required.
	SealKeyFile string
	// OldSealKeyFiles are keys accepted to unseal but never used to seal: the
	// previous keys during a rotation (see the package doc).
	OldSealKeyFiles []string

	// Logger receives diagnostics (a lost lease). Nil means slog.Default().
	Logger *slog.Logger
}

// Client is a node's connection to the fleet: the lock ([Client.TryLock]),
// the shared records and the watch. It is safe for concurrent use. Close it
// when done: that revokes its lease, releasing its locks at once.
type Client struct {
	cli     *clientv3.Client
	sealer  *Sealer
	log     *slog.Logger
	node    string
	keys    keyspace
	timeout time.Duration
	ttl     int64
	now     func() time.Time // the clock of lock and publish times; a test seam

	bg     context.Context // lives until Close; the sessions' keep-alives run on it
	cancel context.CancelFunc

	mu   sync.Mutex
	sess *concurrency.Session // nil until the first lock; replaced when it expires
	// leases are the leases this client was granted (one per session):
	// Watch does not report the release of a lock held on one of them.
	leases map[clientv3.LeaseID]bool

	// live holds this client's Locks not yet released, by lock key: a lock
	// key on this client's lease that no live Lock holds is a ghost (an
	// acquisition whose reply was lost, or one whose Unlock failed), which
	// TryLockFenced adopts instead of reporting it held for ever.
	liveMu    sync.Mutex
	live      map[string]*Lock
	acquiring map[string]int // TryLockFenced calls in progress, by lock key
}

// Dial validates cfg, loads the TLS and sealing keys and returns a Client. It
// does not wait for etcd to be reachable: the first call that needs etcd
// reports [ErrUnavailable] if it is not.
func Dial(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, configError("Endpoints", errors.New("at least one etcd endpoint is required"))
	}
	if cfg.SealKeyFile == "" {
		return nil, configError("SealKeyFile", errors.New("required (private keys are never stored in etcd unsealed)"))
	}
	sealer, err := LoadSealer(cfg.SealKeyFile, cfg.OldSealKeyFiles...)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := clientTLS(cfg)
	if err != nil {
		return nil, err
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	node := cfg.Node
	if node == "" {
		if node, err = os.Hostname(); err != nil {
			return nil, configError("Node", fmt.Errorf("not set and host name unknown: %w", err))
		}
	}
	ttl := int64(cfg.LockTTL / time.Second)
	if cfg.LockTTL == 0 {
		ttl = int64(DefaultLockTTL / time.Second)
	}
	if ttl < 1 {
		return nil, configError("LockTTL", fmt.Errorf("%v: must be at least 1s", cfg.LockTTL))
	}
	dial := cfg.DialTimeout
	if dial == 0 {
		dial = DefaultDialTimeout
	}
	timeout := cfg.RequestTimeout
	if timeout == 0 {
		timeout = DefaultRequestTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          dial,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: dial,
		TLS:                  tlsCfg,
		Logger:               zap.NewNop(), // errors are returned, not logged twice
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: connect to %v: %w", cfg.Endpoints, err)
	}
	bg, cancel := context.WithCancel(context.Background())
	return &Client{
		cli: cli, sealer: sealer, log: log, node: node,
		keys: keyspace{root: prefix + "v1/"}, timeout: timeout, ttl: ttl, now: time.Now,
		bg: bg, cancel: cancel,
	}, nil
}

// configError reports a Config field that cannot be used, as a
// *renew.ConfigError naming the field (a program maps it to its own key).
func configError(field string, err error) error {
	return fmt.Errorf("fleet: config: %w", &renew.ConfigError{Field: field, Err: err})
}

// clientTLS builds the TLS configuration of cfg, nil for plain TCP.
func clientTLS(cfg Config) (*tls.Config, error) {
	https := false
	for _, ep := range cfg.Endpoints {
		if strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "unixs://") {
			https = true
		}
	}
	if cfg.CAFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" && !https {
		return nil, nil
	}
	// The etcd client gives an http:// endpoint no TLS at all: with TLS
	// files configured, a plain endpoint is a mistake that would send locks
	// and certificates in clear, not a choice.
	for _, ep := range cfg.Endpoints {
		if !strings.HasPrefix(ep, "https://") && !strings.HasPrefix(ep, "unixs://") {
			return nil, configError("Endpoints", fmt.Errorf("endpoint %s is not https:// although TLS files are configured", ep))
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := safefile.ReadFileFollow(cfg.CAFile, safefile.MaxFileSize)
		if err != nil {
			return nil, configError("CAFile", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, configError("CAFile", fmt.Errorf("%s: no PEM certificate in it", cfg.CAFile))
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		missing := "CertFile"
		if cfg.KeyFile == "" {
			missing = "KeyFile"
		}
		return nil, configError(missing, errors.New("client certificate and key files: set both or neither"))
	}
	if cfg.CertFile != "" {
		// The key checked is the key used: both are read once, here.
		keyPEM, err := readSecretFile(cfg.KeyFile, safefile.MaxFileSize)
		if err != nil {
			return nil, configError("KeyFile", err)
		}
		certPEM, err := safefile.ReadFileFollow(cfg.CertFile, safefile.MaxFileSize)
		if err != nil {
			return nil, configError("CertFile", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// X509KeyPair's errors describe PEM blocks, never key bytes.
			return nil, configError("CertFile", fmt.Errorf("%s with key %s: %w", cfg.CertFile, cfg.KeyFile, err))
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Node returns this node's name.
func (c *Client) Node() string { return c.node }

// Close revokes the client's lease (releasing every lock it holds at once,
// without waiting for the TTL), stops its keep-alives and closes the
// connection. Revocation is best effort, bounded by RequestTimeout: if etcd
// is unreachable the locks expire after their TTL instead.
func (c *Client) Close() error {
	c.mu.Lock()
	sess := c.sess
	c.sess = nil
	c.mu.Unlock()
	if sess != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		_, _ = c.cli.Revoke(ctx, sess.Lease()) // best effort, see above
		cancel()
		sess.Orphan()
	}
	c.cancel()
	return c.cli.Close()
}

// call runs op with a context bounded by RequestTimeout and requiring a
// leader (a member cut off from the quorum answers at once instead of
// hanging), and classifies its error: see [ErrUnavailable].
func (c *Client) call(ctx context.Context, what string, op func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fleet: %s: %w", what, err)
	}
	cctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), c.timeout)
	defer cancel()
	err := op(cctx)
	if err == nil {
		return nil
	}
	return c.classify(ctx, what, err)
}

// classify wraps an error from etcd: the caller's own cancellation stays the
// context's error; a timeout, an unreachable cluster or a lost leader becomes
// ErrUnavailable; anything else (permission denied, a request too large) is
// returned wrapped as is.
func (c *Client) classify(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fleet: %s: %w", what, ctx.Err())
	}
	if unavailable(err) {
		return fmt.Errorf("fleet: %s: %w (endpoints %v, timeout %v): %w", what, ErrUnavailable, c.cli.Endpoints(), c.timeout, err)
	}
	return fmt.Errorf("fleet: %s: %w", what, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if s, ok := status.FromError(err); ok {
		code = s.Code()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}
