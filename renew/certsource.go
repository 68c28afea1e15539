package renew

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/safefile"
)

// CertSource serves the current generation of one or more lineages to a
// crypto/tls server through GetCertificate, and picks up a new generation
// without a restart.
//
// Handshakes read no files: the certificates live in memory. At most once
// per CheckInterval a handshake looks at where each lineage's current link
// points (one readlink per lineage) and reloads a lineage whose generation
// changed; Reload does the same at once, and Hook returns a deploy hook that
// calls it. Because a generation directory is immutable once current points
// at it, a reload reads certificate and key of one generation: never a
// mixed pair. A failed reload keeps serving what was loaded.
//
// A CertSource is safe for concurrent use.
type CertSource struct {
	dirs  []string
	every time.Duration

	mu     sync.Mutex // serialises reloads
	loaded atomic.Pointer[[]sourceCert]
	last   atomic.Int64 // unix nanoseconds of the last check
}

type sourceCert struct {
	target string // what current pointed to
	cert   *tls.Certificate
}

// defaultCheckInterval is how often a CertSource looks for a new generation
// when none is given.
const defaultCheckInterval = 5 * time.Second

// NewCertSource loads the current generation of each lineage directory
// (Root/NAME of a Renewer). The first lineage is served to clients that
// send no server name, or one no lineage covers. checkEvery ≤ 0 means
// every 5 seconds.
func NewCertSource(checkEvery time.Duration, dirs ...string) (*CertSource, error) {
	if len(dirs) == 0 {
		return nil, errors.New("renew: NewCertSource: no lineage directories")
	}
	if checkEvery <= 0 {
		checkEvery = defaultCheckInterval
	}
	s := &CertSource{dirs: dirs, every: checkEvery}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads every lineage whose current generation changed since the
// last load. It returns the errors of lineages it could not load; those keep
// their previous certificate.
func (s *CertSource) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last.Store(time.Now().UnixNano())
	var prev []sourceCert
	if p := s.loaded.Load(); p != nil {
		prev = *p
	}
	next := make([]sourceCert, len(s.dirs))
	var errs []error
	changed := prev == nil
	for i, dir := range s.dirs {
		if prev != nil {
			next[i] = prev[i]
		}
		target, err := os.Readlink(filepath.Join(dir, atomicfs.CurrentLink))
		if err != nil {
			errs = append(errs, fmt.Errorf("certificate source %s: %w", dir, err))
			continue
		}
		if prev != nil && prev[i].target == target && prev[i].cert != nil {
			continue
		}
		gen := target
		if !filepath.IsAbs(gen) {
			gen = filepath.Join(dir, gen)
		}
		c, err := loadKeyPair(gen)
		if err != nil {
			errs = append(errs, fmt.Errorf("certificate source %s: load %s: %w", dir, gen, err))
			continue
		}
		next[i] = sourceCert{target: target, cert: &c}
		changed = true
	}
	if changed {
		s.loaded.Store(&next)
	}
	return errors.Join(errs...)
}

// loadKeyPair loads a generation's fullchain.pem and privkey.pem through
// safefile.ReadFile: a FIFO or a huge file planted there must not hang the
// handshake that reloads, or fill memory.
func loadKeyPair(gen string) (tls.Certificate, error) {
	chain, err := safefile.ReadFile(filepath.Join(gen, atomicfs.FullchainFile), safefile.MaxFileSize)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := safefile.ReadFile(filepath.Join(gen, atomicfs.KeyFile), safefile.MaxFileSize)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(chain, key)
}

// GetCertificate is for tls.Config.GetCertificate.
func (s *CertSource) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if now := time.Now().UnixNano(); now-s.last.Load() >= int64(s.every) {
		// Only one handshake pays for the check; the others serve what is
		// loaded.
		if s.mu.TryLock() {
			s.mu.Unlock()
			_ = s.Reload() // errors keep the previous certificate
		}
	}
	p := s.loaded.Load()
	if p == nil {
		return nil, errors.New("renew: no certificate loaded")
	}
	var first *tls.Certificate
	for _, sc := range *p {
		if sc.cert == nil {
			continue
		}
		if first == nil {
			first = sc.cert
		}
		if hello != nil && hello.ServerName != "" && hello.SupportsCertificate(sc.cert) == nil {
			return sc.cert, nil
		}
	}
	if first == nil {
		return nil, errors.New("renew: no certificate loaded")
	}
	return first, nil
}

// Hook returns a deploy hook that reloads s, for the Certificates of a
// Renewer embedded in the same process.
func (s *CertSource) Hook() hooks.Hook {
	return hooks.Func("renewkit-certsource-reload", func(context.Context, hooks.Event) error {
		return s.Reload()
	})
}
