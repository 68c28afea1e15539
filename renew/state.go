package renew

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/durable"
	"github.com/renewkit/renewkit/internal/safefile"
)

// stateVersion is written into every state.json; a file with a newer version
// is refused rather than misread.
const stateVersion = 1

// maxStateSize bounds what is read from state.json: a larger file is corrupt.
const maxStateSize = 1 << 20

// genInfo describes the generation that current points to, as the Renewer
// installed it. It is what lets the no-op path decide without parsing a
// certificate.
type genInfo struct {
	Seq       int       `json:"seq"`
	Serial    string    `json:"serial"`
	Domains   []string  `json:"domains"`
	KeyType   KeyType   `json:"key_type,omitempty"`
	Profile   string    `json:"profile,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// CertSize, CertModTime, KeySize and KeyModTime are cert.pem's and
	// privkey.pem's as installed: generation files are immutable, so a
	// difference means someone replaced or damaged them.
	CertSize    int64     `json:"cert_size,omitempty"`
	CertModTime time.Time `json:"cert_mtime,omitzero"`
	KeySize     int64     `json:"key_size,omitempty"`
	KeyModTime  time.Time `json:"key_mtime,omitzero"`
	// CertIno is cert.pem's inode number (0 where unknown): the served
	// cert.pem having it proves current still points at this generation,
	// without reading the link.
	CertIno uint64 `json:"cert_ino,omitempty"`
	// FleetGen is the fleet's number of this generation (fleet mode: the
	// generation was published to or installed from the fleet); 0 outside
	// fleet mode.
	FleetGen uint64 `json:"fleet_generation,omitempty"`
}

// stamp records the size and modification time of the generation's
// cert.pem and privkey.pem in g.
func (g *genInfo) stamp(genDir string) {
	if fi, err := os.Stat(filepath.Join(genDir, atomicfs.CertFile)); err == nil {
		g.CertSize, g.CertModTime, g.CertIno = fi.Size(), fi.ModTime(), inode(fi)
	}
	if fi, err := os.Stat(filepath.Join(genDir, atomicfs.KeyFile)); err == nil {
		g.KeySize, g.KeyModTime = fi.Size(), fi.ModTime()
	}
}

// intact reports whether the served cert.pem and privkey.pem (through the
// stable links and current, so a dangling link shows too) still have the
// sizes and times recorded for them. Two stat calls; the other three files
// are checked when the generation is verified in full.
func (g *genInfo) intact(lineageDir string) bool {
	c, err := os.Stat(filepath.Join(lineageDir, atomicfs.CertFile))
	if err != nil || g.CertSize == 0 || c.Size() != g.CertSize || !c.ModTime().Equal(g.CertModTime) || inode(c) != g.CertIno {
		return false
	}
	k, err := os.Stat(filepath.Join(lineageDir, atomicfs.KeyFile))
	return err == nil && g.KeySize > 0 && k.Size() == g.KeySize && k.ModTime().Equal(g.KeyModTime)
}

// ariState is what the Renewer remembers of the CA's ACME Renewal Information.
type ariState struct {
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	ExplanationURL string    `json:"explanation_url,omitempty"`
	// Picked is the instant chosen uniformly in [Start, End), kept so that
	// successive runs agree on it (RFC 9773 §4.2).
	Picked time.Time `json:"picked"`
	// Serial is the certificate the window was fetched for.
	Serial string `json:"serial"`
	// NextFetch is when the window may be fetched again.
	NextFetch time.Time `json:"next_fetch"`
}

// state is the content of state.json.
type state struct {
	Version int `json:"version"`
	// Current describes the generation current points to, or nil.
	Current *genInfo `json:"current,omitempty"`

	LastAttempt    time.Time `json:"last_attempt,omitzero"`
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastOutcome    Outcome   `json:"last_outcome,omitempty"`
	Failures       int       `json:"failures,omitempty"`
	RetryNotBefore time.Time `json:"retry_not_before,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	// LastErrorLocal is set when LastError was caused on this machine
	// (ErrLocal); such a failure is not counted in Failures.
	LastErrorLocal bool `json:"last_error_local,omitempty"`
	// LastErrorPermanent is set when retrying LastError cannot help
	// (backoff.ClassPermanent: a refusal, a local problem).
	LastErrorPermanent bool `json:"last_error_permanent,omitempty"`
	// FailedConfig is the configuration hash (Certificate.configHash) the
	// failures counted in Failures happened under: RetryNotBefore holds
	// back only that configuration.
	FailedConfig string `json:"failed_config,omitempty"`

	ARI   *ariState     `json:"ari,omitempty"`
	Hooks hooks.Journal `json:"hooks"`
	// FleetAccepted is the highest fleet generation number this node
	// accepted for the lineage (installed or published; fleet mode): an
	// older one is never installed (fleettrust.go). Never lowered.
	FleetAccepted uint64 `json:"fleet_accepted,omitempty"`
	// LastOrder is the URL of the order whose certificate Current holds,
	// so that an order journal found after a crash can be recognised as
	// already installed.
	LastOrder string `json:"last_order,omitempty"`

	// loose is set by loadState when the file's mode is not stateMode (an
	// older renewkit wrote 0644): the run saves it again.
	loose bool
}

// stateMode is state.json's mode: it may hold the output of failed deploy
// hooks (a verbose curl prints bearer tokens), so it is the owner's only,
// like a key. Every reader (a run, -status) is the owner: atomicfs refuses a
// lineage directory owned by anyone else.
const stateMode = 0o600

// errStateCorrupt marks a state.json that exists but cannot be parsed: it
// is reported and rebuilt from what is on disk. A state.json that cannot be
// read (permissions, I/O errors) or that a newer renewkit wrote is not
// corrupt: the run fails rather than overwrite what it does not understand.
var errStateCorrupt = errors.New("corrupt state")

// loadState reads dir's state.json, through safefile.ReadFile, and always
// returns a usable state:
//
//   - a missing file: an empty state and a nil error;
//   - a truncated, oversized or garbage file, one without a version or with
//     an implausible current generation: an empty state and an error
//     wrapping errStateCorrupt, which callers report and then rebuild from
//     what is on disk;
//   - a file that cannot be read (a symbolic link, a FIFO or a device there
//     is an error, never a hang; permissions, I/O) or that a newer renewkit
//     wrote: an empty state and an error that does not wrap
//     errStateCorrupt, on which the run fails rather than overwrite it.
//
// Nothing past maxStateSize is read.
func loadState(dir string) (*state, error) {
	path := filepath.Join(dir, atomicfs.StateFile)
	b, err := safefile.ReadFile(path, maxStateSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &state{Version: stateVersion}, nil
	case errors.Is(err, safefile.ErrTooLarge):
		return &state{Version: stateVersion}, fmt.Errorf("%w: %w", errStateCorrupt, err)
	case err != nil:
		// A FIFO, a device, a symbolic link: not ours to overwrite.
		return &state{Version: stateVersion}, fmt.Errorf("read state: %w", err)
	}
	st, err := parseState(path, b)
	if err == nil {
		if fi, serr := os.Lstat(path); serr == nil && fi.Mode().Perm() != stateMode {
			st.loose = true // rewritten with stateMode by this run
		}
	}
	return st, err
}

func parseState(path string, b []byte) (*state, error) {
	if len(b) > maxStateSize {
		return &state{Version: stateVersion}, fmt.Errorf("%s: %w: %d bytes is larger than %d", path, errStateCorrupt, len(b), maxStateSize)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return &state{Version: stateVersion}, fmt.Errorf("%s: %w: %w", path, errStateCorrupt, err)
	}
	if st.Version > stateVersion {
		return &state{Version: stateVersion}, fmt.Errorf("%s: written by a newer renewkit (state version %d, this one knows %d); refusing to overwrite it", path, st.Version, stateVersion)
	}
	if st.Version == 0 {
		return &state{Version: stateVersion}, fmt.Errorf("%s: %w: no version", path, errStateCorrupt)
	}
	if st.Current != nil && (!(atomicfs.Generation{Seq: st.Current.Seq}).Plausible() || !st.Current.NotAfter.After(st.Current.NotBefore)) {
		return &state{Version: stateVersion}, fmt.Errorf("%s: %w: implausible current generation", path, errStateCorrupt)
	}
	return &st, nil
}

// save writes st atomically and durably to dir/state.json.
func (st *state) save(dir string) error {
	return st.write(dir, durable.WriteFile)
}

// saveNoDirSync writes st atomically to dir/state.json, without the fsync
// of dir: a power loss may bring back the previous state.json, whole. Only
// for a save whose loss is harmless (see the package doc's fsync list).
func (st *state) saveNoDirSync(dir string) error {
	return st.write(dir, durable.WriteFileNoDirSync)
}

// encode returns st as state.json holds it (without the final newline).
func (st *state) encode() ([]byte, error) {
	st.Version = stateVersion
	return json.MarshalIndent(st, "", "  ")
}

func (st *state) write(dir string, writeFile func(string, []byte, fs.FileMode) error) error {
	b, err := st.encode()
	if err != nil {
		return fmt.Errorf("encode state of %s: %w", dir, err)
	}
	if err := writeFile(filepath.Join(dir, atomicfs.StateFile), append(b, '\n'), stateMode); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
