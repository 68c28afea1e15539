package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/expiry"
	"github.com/renewkit/renewkit/fleet"
	"github.com/renewkit/renewkit/hooks"
	"github.com/renewkit/renewkit/internal/safefile"
	"github.com/renewkit/renewkit/renew"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

// Let's Encrypt's directories, for the server shortcuts.
const (
	letsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	letsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// defaultRoot is the storage root when neither the file nor -root sets one.
const defaultRoot = "/var/lib/renewkit"

// maxConfigSize bounds what is read from a configuration file.
const maxConfigSize = 16 << 20

// Challenge types.
const (
	challengeHTTP01    = "http-01"
	challengeTLSALPN01 = "tls-alpn-01"
	challengeDNS01     = "dns-01"
)

// config is a loaded, validated configuration: what a run needs, with every
// default applied and every string parsed.
type config struct {
	// Path is the file the configuration came from.
	Path string
	// DirectoryURL is the ACME directory (shortcuts resolved).
	DirectoryURL string
	Email        string
	AgreeTOS     bool
	// EAB is the external account binding, or nil. Its HMAC is read from
	// its source only when an issuer is built.
	EAB *eabConfig
	// Root is the storage root (absolute).
	Root string
	// AccountDir is where the ACME account lives (absolute).
	AccountDir string
	// CAFile holds extra PEM roots trusted for the ACME server's TLS, or "".
	CAFile string
	// Keep and Concurrency are the Renewer's (0: its defaults).
	Keep        int
	Concurrency int
	// LockStuckAfter is the Renewer's (0: derived per certificate).
	LockStuckAfter time.Duration
	// Modes are the file modes and group of lineage files.
	Modes atomicfs.Modes
	// Retry is the in-run retry policy.
	Retry backoff.Policy
	// Certificates are the configured certificates, in file order.
	Certificates []certConfig

	// Serve is the [serve] section: what -serve uses (see serve.go).
	Serve serveConfig

	// Fleet is the [fleet] section mapped onto the fleet client's
	// configuration, nil when the section is absent (single-node mode).
	Fleet *fleet.Config

	// index locates keys in the file, for messages (nil when the
	// configuration did not come from a file).
	index func() *keyIndex
}

// configError is a problem with the key at ipath, located in the file.
func (cfg *config) configError(ipath, format string, args ...any) *configProblem {
	e := &configProblem{Path: cfg.Path, Msg: fmt.Sprintf(format, args...)}
	if cfg.index != nil && ipath != "" {
		e.Line = cfg.index().line(ipath)
	}
	return e
}

// where is "FILE:LINE" of the key at ipath (an indexed path like
// "certificate[0].challenge.webroot"), or of its nearest enclosing table,
// or just FILE.
func (cfg *config) where(ipath string) string {
	if cfg.index != nil && ipath != "" {
		if line := cfg.index().line(ipath); line > 0 {
			return fmt.Sprintf("%s:%d", cfg.Path, line)
		}
	}
	return cfg.Path
}

// certConfig is one configured certificate.
type certConfig struct {
	renew.Certificate
	// Challenge is how its names are validated.
	Challenge challengeConfig
	// Argvs are the deploy hooks' command lines (Certificate.Hooks are
	// built from them).
	Argvs [][]string
	// ipath is the certificate's indexed key path ("certificate[2]"), and
	// hooksPath that of the hooks it uses (its own or [defaults]').
	ipath, hooksPath string
}

// challengeConfig is a validated challenge section.
type challengeConfig struct {
	Type string
	// Webroot (http-01) or Listen (http-01, tls-alpn-01).
	Webroot string
	Listen  string
	// DNS-01.
	Provider             string
	Env                  map[string]string
	Resolvers            []string
	PropagationDelay     time.Duration
	PropagationTimeout   time.Duration
	SkipPropagationCheck bool
	// ipath is where the table is: "certificate[2].challenge" or
	// "defaults.challenge". Not part of key.
	ipath string
}

// key identifies challenge configurations that one issuer can serve.
func (c challengeConfig) key() string {
	env := make([]string, 0, len(c.Env))
	for k, v := range c.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return strings.Join([]string{c.Type, c.Webroot, c.Listen, c.Provider, strings.Join(env, "\x00"),
		strings.Join(c.Resolvers, ","), c.PropagationDelay.String(), c.PropagationTimeout.String(),
		strconv.FormatBool(c.SkipPropagationCheck)}, "\x01")
}

// fileConfig is the TOML document.
type fileConfig struct {
	Server      string     `toml:"server"`
	Email       string     `toml:"email"`
	AgreeTOS    bool       `toml:"agree_tos"`
	EAB         *eabConfig `toml:"eab"`
	Root        string     `toml:"root"`
	AccountDir  string     `toml:"account_dir"`
	CAFile      string     `toml:"ca_file"`
	Keep        int        `toml:"keep"`
	Concurrency int        `toml:"concurrency"`
	// LockStuckAfter is renew.Renewer.LockStuckAfter.
	LockStuckAfter *duration   `toml:"lock_stuck_after"`
	Files          filesConfig `toml:"files"`
	Retry          retryConfig `toml:"retry"`
	Defaults       certFile    `toml:"defaults"`
	Certificates   []certFile  `toml:"certificate"`
	Serve          serveFile   `toml:"serve"`
	Fleet          *fleetFile  `toml:"fleet"`
}

// eabConfig is the [eab] section.
type eabConfig struct {
	KeyID    string `toml:"key_id"`
	HMAC     string `toml:"hmac"`
	HMACFile string `toml:"hmac_file"`
	HMACEnv  string `toml:"hmac_env"`
}

// hmacKey reads the HMAC from the configured source.
func (e *eabConfig) hmacKey() (string, error) {
	switch {
	case e.HMAC != "":
		return e.HMAC, nil
	case e.HMACFile != "":
		b, err := safefile.ReadFileFollow(e.HMACFile, maxSecretFileSize)
		if err != nil {
			return "", fmt.Errorf("eab: hmac_file %s: cannot read it: %w", e.HMACFile, unwrapPath(err))
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("eab: hmac_file %s is empty", e.HMACFile)
		}
		return s, nil
	default:
		s := strings.TrimSpace(os.Getenv(e.HMACEnv))
		if s == "" {
			return "", fmt.Errorf("eab: environment variable %s (hmac_env) is empty or unset", e.HMACEnv)
		}
		return s, nil
	}
}

// filesConfig is the [files] section.
type filesConfig struct {
	KeyMode  *fileMode `toml:"key_mode"`
	CertMode *fileMode `toml:"cert_mode"`
	DirMode  *fileMode `toml:"dir_mode"`
	Group    string    `toml:"group"`
}

// retryConfig is the [retry] section, backoff.Policy's fields.
type retryConfig struct {
	Retries    int       `toml:"retries"`
	Initial    *duration `toml:"initial"`
	Multiplier float64   `toml:"multiplier"`
	Max        *duration `toml:"max"`
	Jitter     float64   `toml:"jitter"`
}

// certFile is a [[certificate]] entry or the [defaults] section (which
// ignores name and domains).
type certFile struct {
	Name        string         `toml:"name"`
	Domains     []string       `toml:"domains"`
	KeyType     *keyType       `toml:"key_type"`
	ReuseKey    *bool          `toml:"reuse_key"`
	Profile     *string        `toml:"profile"`
	Policy      *policy        `toml:"policy"`
	Hooks       *[][]string    `toml:"hooks"`
	HookTimeout *duration      `toml:"hook_timeout"`
	Challenge   *challengeFile `toml:"challenge"`
}

// challengeFile is a challenge table.
type challengeFile struct {
	Type                 string            `toml:"type"`
	Webroot              string            `toml:"webroot"`
	Listen               string            `toml:"listen"`
	Provider             string            `toml:"provider"`
	Env                  map[string]string `toml:"env"`
	Resolvers            []string          `toml:"resolvers"`
	PropagationDelay     *duration         `toml:"propagation_delay"`
	PropagationTimeout   *duration         `toml:"propagation_timeout"`
	SkipPropagationCheck bool              `toml:"skip_propagation_check"`
}

// duration is a TOML string like "90s", "10m", "2h30m" or "7d".
type duration time.Duration

// UnmarshalTOML implements toml.Unmarshaler.
func (d *duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a duration string like \"90s\", \"10m\" or \"7d\", not %s", tomlType(v))
	}
	x, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(x)
	return nil
}

// parseDuration reads a Go duration or a number of days ("7d", "1.5d").
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(t, "d"); ok {
		f, err := strconv.ParseFloat(days, 64)
		if err == nil && f >= 0 && f*24 < math.MaxInt64/float64(time.Hour) {
			return time.Duration(f * 24 * float64(time.Hour)), nil
		}
	} else if x, err := time.ParseDuration(t); err == nil {
		if x < 0 {
			return 0, fmt.Errorf("duration %q is negative", s)
		}
		return x, nil
	}
	return 0, fmt.Errorf("invalid duration %q (want e.g. \"90s\", \"10m\", \"2h30m\" or \"7d\")", s)
}

// keyType is a TOML string naming a renew.KeyType.
type keyType renew.KeyType

var keyTypes = []renew.KeyType{renew.EC256, renew.EC384, renew.RSA2048, renew.RSA3072, renew.RSA4096}

// UnmarshalTOML implements toml.Unmarshaler.
func (k *keyType) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a key type string, not %s", tomlType(v))
	}
	kt := renew.KeyType(strings.ToLower(strings.TrimSpace(s)))
	if !slices.Contains(keyTypes, kt) {
		return fmt.Errorf("unknown key type %q (want ec256, ec384, rsa2048, rsa3072 or rsa4096)", s)
	}
	*k = keyType(kt)
	return nil
}

// policy is a TOML string parsed by expiry.ParsePolicy.
type policy struct{ expiry.Policy }

// UnmarshalTOML implements toml.Unmarshaler.
func (p *policy) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a renewal policy string like \"1/3\" or \"30d\", not %s", tomlType(v))
	}
	pol, err := expiry.ParsePolicy(s)
	if err != nil {
		return err
	}
	p.Policy = pol
	return nil
}

// fileMode is an octal permission string like "0640".
type fileMode fs.FileMode

// UnmarshalTOML implements toml.Unmarshaler.
func (m *fileMode) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want an octal mode string like \"0640\", not %s", tomlType(v))
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(s), "0o"), 8, 32)
	if err != nil || n > 0o777 {
		return fmt.Errorf("invalid file mode %q (want octal permissions like \"0640\")", s)
	}
	*m = fileMode(n)
	return nil
}

// tomlType names the TOML type of a decoded value.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// overrides are the configuration flags; nil fields were not given.
type overrides struct {
	Server      *string
	Email       *string
	AgreeTOS    *bool
	Root        *string
	AccountDir  *string
	CAFile      *string
	Keep        *int
	Concurrency *int
	Listen      *string
}

// configProblem is a problem with a configuration: where it is and what.
type configProblem struct {
	// Path is the file, or the flag ("-root") the value came from.
	Path string
	// Line is 1-based; 0 when unknown or not from the file.
	Line int
	// Msg says what is wrong.
	Msg string
}

func (e *configProblem) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// maxSecretFileSize bounds hmac_file and ca_file.
const maxSecretFileSize = 1 << 20

// loadConfig reads and validates the configuration file at path, with the
// flags in ov applied over it.
func loadConfig(path string, ov overrides) (*config, error) {
	// Without blocking (a FIFO at path would hang the run, -status and
	// -dry-run), regular files only, through the limit. The file may be a
	// symbolic link (configuration management often makes one).
	data, err := safefile.ReadFileFollow(path, maxConfigSize)
	switch {
	case errors.Is(err, safefile.ErrTooLarge):
		return nil, &configProblem{Path: path, Msg: fmt.Sprintf("larger than %d bytes", maxConfigSize)}
	case errors.Is(err, safefile.ErrNotRegular):
		return nil, &configProblem{Path: path, Msg: "cannot read configuration: not a regular file"}
	case err != nil:
		return nil, &configProblem{Path: path, Msg: fmt.Sprintf("cannot read configuration: %v", unwrapPath(err))}
	}
	return parseConfig(path, data, ov)
}

// parseConfig decodes and validates a configuration document. It never
// panics, whatever data holds.
func parseConfig(path string, data []byte, ov overrides) (*config, error) {
	var fc fileConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&fc)
	if err != nil {
		return nil, tomlError(path, err)
	}
	var idx *keyIndex
	index := func() *keyIndex {
		if idx == nil {
			idx = indexKeys(string(data))
		}
		return idx
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, undecodedError(path, index(), und)
	}
	v := &validator{path: path, index: index}
	cfg := v.config(&fc, ov)
	if err := v.err(); err != nil {
		return nil, err
	}
	cfg.index = index
	for i := range cfg.Certificates {
		cfg.Certificates[i].Fingerprint = cfg.fingerprint(&cfg.Certificates[i])
	}
	return cfg, nil
}

// fingerprint digests what, besides its names, key type and profile,
// decides whether an order for c can succeed: the CA, the account and the
// challenge set-up (renew.Certificate.Fingerprint). A failure recorded
// under another fingerprint does not hold a run back.
func (cfg *config) fingerprint(c *certConfig) string {
	h := sha256.New()
	eab := ""
	if cfg.EAB != nil {
		eab = cfg.EAB.KeyID
	}
	for _, s := range []string{cfg.DirectoryURL, cfg.AccountDir, cfg.CAFile, eab, strconv.FormatBool(cfg.AgreeTOS), c.Challenge.key()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// foundRE matches the parser's quote of a bare word it could not read as a
// value (longer than punctuation).
var foundRE = regexp.MustCompile(`found "[^"]{3,}"`)

// tomlError turns a decoding error into a configProblem with a line number.
func tomlError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		// The parser quotes what it found, which may be an unquoted secret
		// (hmac = abc…): never echo it, say what is wrong with it.
		msg := foundRE.ReplaceAllString(pe.Message, "found a bare word (a string value needs quotes)")
		if pe.LastKey != "" {
			msg = fmt.Sprintf("%s: %s", pe.LastKey, msg)
		}
		return &configProblem{Path: path, Line: pe.Position.Line, Msg: msg}
	}
	if m := typeErrRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &configProblem{Path: path, Line: line, Msg: fmt.Sprintf("%s: wrong type: the value is %s, want %s", m[2], tomlName(m[3]), goName(m[4]))}
	}
	if m := lineErrRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &configProblem{Path: path, Line: line, Msg: fmt.Sprintf("%s: %s", m[2], m[3])}
	}
	return &configProblem{Path: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

var (
	typeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): incompatible types: TOML value has type (\S+); destination has type (\S+)`)
	lineErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)
)

// tomlName names a TOML value's Go type (from BurntSushi/toml's message)
// the way the configuration reference does.
func tomlName(t string) string {
	switch {
	case t == "int64":
		return "an integer"
	case t == "float64":
		return "a float"
	case t == "string":
		return "a string"
	case t == "bool":
		return "a boolean"
	case strings.HasPrefix(t, "map"):
		return "a table"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.Contains(t, "Time") || strings.Contains(t, "Local"):
		return "a date-time"
	}
	return t
}

// goName names a destination kind (from BurntSushi/toml's message) the
// way the configuration reference does.
func goName(t string) string {
	switch t {
	case "slice", "array":
		return "an array"
	case "map", "struct", "table":
		return "a table"
	case "integer":
		return "an integer"
	case "string", "boolean", "float":
		return "a " + t
	}
	return t
}

// undecodedError reports unknown keys, with their lines.
func undecodedError(path string, idx *keyIndex, und []toml.Key) error {
	var keys [][]string
	for _, k := range und {
		// Report a table once, not each of its keys.
		covered := false
		for _, p := range keys {
			if len(p) < len(k) && slices.Equal(p, k[:len(p)]) {
				covered = true
				break
			}
		}
		if !covered {
			keys = append(keys, []string(k))
		}
	}
	lines := idx.undecodedLines(keys[:min(len(keys), maxReported)])
	errs := make([]error, 0, len(keys))
	for i, k := range keys {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		msg := fmt.Sprintf("unknown key %s", toml.Key(k))
		if s := suggestKey(k); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		errs = append(errs, &configProblem{Path: path, Line: line, Msg: msg})
	}
	return joinErrs(errs)
}

// maxReported is how many configuration problems are reported at most.
const maxReported = 20

// joinErrs joins errors one per line, keeping at most maxReported.
func joinErrs(errs []error) error {
	if len(errs) > maxReported {
		n := len(errs) - maxReported
		errs = append(errs[:maxReported:maxReported], fmt.Errorf("… and %d more problems", n))
	}
	return errors.Join(errs...)
}

// validator checks a decoded document and collects the problems.
type validator struct {
	path  string
	index func() *keyIndex
	errs  []error
}

// at records a problem with the key at ipath. Only the reported problems
// are located (finding a line is a scan of the document).
func (v *validator) at(ipath string, format string, args ...any) {
	line := 0
	if len(v.errs) < maxReported {
		line = v.index().line(ipath)
	}
	v.errs = append(v.errs, &configProblem{Path: v.path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// flag records a problem with a flag's value.
func (v *validator) flag(name string, format string, args ...any) {
	v.errs = append(v.errs, &configProblem{Path: "flag -" + name, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return joinErrs(v.errs)
}

// report sends a problem to the flag when the value came from one, else to
// the file's key.
func (v *validator) report(fromFlag bool, flagName, ipath, format string, args ...any) {
	if fromFlag {
		v.flag(flagName, format, args...)
	} else {
		v.at(ipath, format, args...)
	}
}

func (v *validator) config(fc *fileConfig, ov overrides) *config {
	cfg := &config{Path: v.path}

	// ACME server and account.
	server, fromFlag := fc.Server, false
	if ov.Server != nil {
		server, fromFlag = *ov.Server, true
	}
	switch {
	case strings.TrimSpace(server) == "":
		v.report(fromFlag, "server", "server", "server is required: an ACME directory URL, or \"staging\" or \"production\" for Let's Encrypt")
	default:
		u, err := resolveServer(server)
		if err != nil {
			v.report(fromFlag, "server", "server", "server: %v", err)
		}
		cfg.DirectoryURL = u
	}
	cfg.Email, fromFlag = fc.Email, false
	if ov.Email != nil {
		cfg.Email, fromFlag = *ov.Email, true
	}
	if e := cfg.Email; e != "" {
		if err := acmeissuer.ValidateEmail(e); err != nil {
			v.report(fromFlag, "email", "email", "email %v", err)
		}
	}
	cfg.AgreeTOS = fc.AgreeTOS
	if ov.AgreeTOS != nil {
		cfg.AgreeTOS = *ov.AgreeTOS
	}
	if e := fc.EAB; e != nil {
		if strings.TrimSpace(e.KeyID) == "" {
			v.at("eab.key_id", "eab: key_id is required")
		}
		n := 0
		for _, s := range []string{e.HMAC, e.HMACFile, e.HMACEnv} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			v.at("eab", "eab: set exactly one of hmac, hmac_file and hmac_env")
		}
		if e.HMACFile != "" && !filepath.IsAbs(e.HMACFile) {
			v.at("eab.hmac_file", "eab: hmac_file %q must be an absolute path", e.HMACFile)
		}
		cfg.EAB = e
	}

	// Storage.
	cfg.Root, fromFlag = fc.Root, false
	if ov.Root != nil {
		cfg.Root, fromFlag = absFlag(*ov.Root), true
	}
	if cfg.Root == "" {
		cfg.Root = defaultRoot
	}
	if !filepath.IsAbs(cfg.Root) {
		v.report(fromFlag, "root", "root", "root %q must be an absolute path (relative to what? the configuration is read by a service)", cfg.Root)
	}
	cfg.Root = filepath.Clean(cfg.Root)
	cfg.AccountDir, fromFlag = fc.AccountDir, false
	if ov.AccountDir != nil {
		cfg.AccountDir, fromFlag = absFlag(*ov.AccountDir), true
	}
	switch {
	case cfg.AccountDir == "":
		cfg.AccountDir = acmeissuer.DefaultAccountDir(cfg.Root, cfg.DirectoryURL)
	case !filepath.IsAbs(cfg.AccountDir):
		v.report(fromFlag, "account-dir", "account_dir", "account_dir %q must be an absolute path", cfg.AccountDir)
	}
	cfg.CAFile, fromFlag = fc.CAFile, false
	if ov.CAFile != nil {
		cfg.CAFile, fromFlag = absFlag(*ov.CAFile), true
	}
	if cfg.CAFile != "" && !filepath.IsAbs(cfg.CAFile) {
		v.report(fromFlag, "ca-file", "ca_file", "ca_file %q must be an absolute path", cfg.CAFile)
	}
	cfg.Keep, fromFlag = fc.Keep, false
	if ov.Keep != nil {
		cfg.Keep, fromFlag = *ov.Keep, true
	}
	if cfg.Keep < 0 {
		v.report(fromFlag, "keep", "keep", "keep must be at least 1 (0 means the default, 3)")
	}
	cfg.Concurrency, fromFlag = fc.Concurrency, false
	if ov.Concurrency != nil {
		cfg.Concurrency, fromFlag = *ov.Concurrency, true
	}
	if cfg.Concurrency < 0 {
		v.report(fromFlag, "concurrency", "concurrency", "concurrency must not be negative (0 means 4 × CPUs)")
	}
	if fc.LockStuckAfter != nil {
		if cfg.LockStuckAfter = time.Duration(*fc.LockStuckAfter); cfg.LockStuckAfter <= 0 {
			v.at("lock_stuck_after", "lock_stuck_after must be positive (leave it out for the bound derived from the retry policy and hook timeouts)")
		}
	}
	cfg.Modes = v.files(fc.Files)
	cfg.Retry = v.retry(fc.Retry)
	cfg.Serve = v.serve(fc.Serve, ov)
	cfg.Fleet = v.fleet(fc.Fleet)

	// Certificates.
	if len(fc.Certificates) == 0 {
		v.at("", "no [[certificate]] configured")
	}
	def := v.defaults(&fc.Defaults)
	cfg.Certificates = make([]certConfig, 0, len(fc.Certificates))
	names := make(map[string]int, len(fc.Certificates))
	for i := range fc.Certificates {
		c, ok := v.certificate(i, &fc.Certificates[i], &fc.Defaults, def)
		if !ok {
			continue
		}
		key := strings.ToLower(c.Name)
		if j, dup := names[key]; dup {
			v.at(fmt.Sprintf("certificate[%d].name", i), "certificate name %q is already used by the certificate at line %d", c.Name, v.index().line(fmt.Sprintf("certificate[%d]", j)))
			continue
		}
		names[key] = i
		cfg.Certificates = append(cfg.Certificates, c)
	}
	return cfg
}

// absFlag makes a path given on the command line absolute: unlike a path in
// the file, its meaning (relative to the working directory) is clear.
func absFlag(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// resolveServer maps the shortcuts to Let's Encrypt's URLs and checks a URL.
func resolveServer(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "production", "letsencrypt", "lets-encrypt":
		return letsEncryptProduction, nil
	case "staging", "letsencrypt-staging", "lets-encrypt-staging":
		return letsEncryptStaging, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return s, fmt.Errorf("%q is neither \"staging\", \"production\" nor an https:// ACME directory URL", s)
	}
	return s, nil
}

func (v *validator) files(f filesConfig) atomicfs.Modes {
	var m atomicfs.Modes
	if f.Group != "" {
		gid, err := lookupGroup(f.Group)
		if err != nil {
			v.at("files.group", "files: group: %v", err)
		} else {
			m.Group = strconv.Itoa(gid)
		}
	}
	// A mode of 0 would mean atomicfs's default: refuse it, as any mode
	// that leaves the owner unable to read.
	if k := f.KeyMode; k != nil {
		if fs.FileMode(*k)&^0o640 != 0 || *k == 0 {
			v.at("files.key_mode", "files: key_mode %04o grants more than owner read-write and group read, or nothing", fs.FileMode(*k))
		}
		m.Key = fs.FileMode(*k)
	}
	if c := f.CertMode; c != nil {
		if fs.FileMode(*c)&0o033 != 0 || *c == 0 {
			v.at("files.cert_mode", "files: cert_mode %04o lets group or others write or execute, or grants nothing", fs.FileMode(*c))
		}
		m.Cert = fs.FileMode(*c)
	}
	if d := f.DirMode; d != nil {
		if fs.FileMode(*d)&0o022 != 0 || *d == 0 {
			v.at("files.dir_mode", "files: dir_mode %04o lets group or others write, or grants nothing", fs.FileMode(*d))
		}
		m.Dir = fs.FileMode(*d)
	}
	return m
}

// lookupGroup resolves a group name or numeric id.
func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("negative group id %d", n)
		}
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(grp.Gid)
}

func (v *validator) retry(r retryConfig) backoff.Policy {
	p := backoff.Policy{Retries: r.Retries, Multiplier: r.Multiplier, Jitter: r.Jitter}
	if r.Initial != nil {
		p.Initial = time.Duration(*r.Initial)
	}
	if r.Max != nil {
		p.Max = time.Duration(*r.Max)
	}
	if r.Multiplier < 0 || math.IsNaN(r.Multiplier) || math.IsInf(r.Multiplier, 0) {
		v.at("retry.multiplier", "retry: multiplier must be a positive number")
	}
	if r.Jitter > 1 || math.IsNaN(r.Jitter) || math.IsInf(r.Jitter, 0) {
		v.at("retry.jitter", "retry: jitter must be at most 1 (negative: none)")
	}
	return p
}

// inherited is what the [defaults] section gives certificates, checked
// once rather than for every certificate that inherits it.
type inherited struct {
	hooks     []hooks.Hook
	argvs     [][]string
	challenge *challengeConfig
}

// defaults checks the [defaults] section.
func (v *validator) defaults(d *certFile) inherited {
	var in inherited
	if d.Name != "" {
		v.at("defaults.name", "defaults: name cannot have a default")
	}
	if len(d.Domains) > 0 {
		v.at("defaults.domains", "defaults: domains cannot have a default")
	}
	if d.HookTimeout != nil && *d.HookTimeout == 0 {
		v.at("defaults.hook_timeout", "defaults: hook_timeout must be positive")
	}
	if d.Hooks != nil {
		in.hooks, in.argvs = v.hooks("defaults.hooks", "defaults", *d.Hooks, d.HookTimeout, nil)
	}
	if d.Challenge != nil {
		c := v.challenge("defaults.challenge", "defaults", d.Challenge)
		in.challenge = &c
	}
	return in
}

// hooks builds the hooks of argvs, with the timeout of own or else def.
func (v *validator) hooks(ipath, label string, argvs [][]string, own, def *duration) ([]hooks.Hook, [][]string) {
	var timeout time.Duration
	if t := pick(own, def); t != nil {
		timeout = time.Duration(*t)
	}
	var hs []hooks.Hook
	var out [][]string
	for j, argv := range argvs {
		if len(argv) == 0 || argv[0] == "" {
			v.at(ipath, "%s: hook %d has an empty command (want e.g. [\"systemctl\", \"reload\", \"nginx\"])", label, j+1)
			continue
		}
		h := hooks.Command(argv...)
		if timeout > 0 {
			h = h.WithTimeout(timeout)
		}
		hs = append(hs, h)
		out = append(out, slices.Clone(argv))
	}
	if err := hooks.Validate(hs); err != nil {
		v.at(ipath, "%s: %v", label, err)
	}
	return hs, out
}

// certificate validates certificate i with the defaults applied.
func (v *validator) certificate(i int, cf *certFile, d *certFile, def inherited) (certConfig, bool) {
	p := fmt.Sprintf("certificate[%d]", i)
	n0 := len(v.errs)
	var c certConfig

	c.Name = cf.Name
	if c.Name == "" && len(cf.Domains) > 0 {
		c.Name = cf.Domains[0] // like certbot
	}
	label := fmt.Sprintf("certificate %q", c.Name)
	if c.Name == "" {
		label = fmt.Sprintf("certificate #%d", i+1)
	}
	if err := renew.ValidateName(c.Name); err != nil {
		switch {
		case cf.Name == "" && c.Name == "":
			v.at(p, "%s: name is required (or domains, whose first one names it)", label)
		case cf.Name == "":
			v.at(p+".domains", "%s: the first domain cannot name the lineage directory; set name", label)
		default:
			v.at(p+".name", "%s: name must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'", label)
		}
	}

	if len(cf.Domains) == 0 {
		v.at(p+".domains", "%s: domains is required and must list at least one name", label)
	}
	seen := map[string]bool{}
	wildcard := false
	for _, dn := range cf.Domains {
		if err := renew.ValidateDomain(dn); err != nil {
			v.at(p+".domains", "%s: domain %q: %v", label, dn, err)
			continue
		}
		ld := renew.CanonicalName(dn)
		if seen[ld] {
			v.at(p+".domains", "%s: domain %q is listed twice", label, dn)
		}
		seen[ld] = true
		wildcard = wildcard || strings.HasPrefix(ld, "*.")
	}
	c.Domains = slices.Clone(cf.Domains)

	c.KeyType = renew.EC256
	if k := pick(cf.KeyType, d.KeyType); k != nil {
		c.KeyType = renew.KeyType(*k)
	}
	if r := pick(cf.ReuseKey, d.ReuseKey); r != nil {
		c.ReuseKey = *r
	}
	if pr := pick(cf.Profile, d.Profile); pr != nil {
		c.Profile = *pr
	}
	if pol := pick(cf.Policy, d.Policy); pol != nil {
		c.Policy = pol.Policy
	}

	if cf.HookTimeout != nil && *cf.HookTimeout == 0 {
		v.at(p+".hook_timeout", "%s: hook_timeout must be positive", label)
	}
	switch {
	case cf.Hooks != nil:
		c.Hooks, c.Argvs = v.hooks(p+".hooks", label, *cf.Hooks, cf.HookTimeout, d.HookTimeout)
		c.hooksPath = p + ".hooks"
	case cf.HookTimeout != nil && d.Hooks != nil:
		// The defaults' hooks with this certificate's timeout: no new
		// problem can arise from the same argvs.
		sub := &validator{path: v.path, index: v.index}
		c.Hooks, c.Argvs = sub.hooks("", label, *d.Hooks, cf.HookTimeout, nil)
		c.hooksPath = "defaults.hooks"
	default:
		c.Hooks, c.Argvs = def.hooks, def.argvs
		c.hooksPath = "defaults.hooks"
	}

	switch {
	case cf.Challenge != nil:
		c.Challenge = v.challenge(p+".challenge", label, cf.Challenge)
	case def.challenge != nil:
		c.Challenge = *def.challenge
	case d.Challenge == nil:
		v.at(p, "%s: no challenge: add a [certificate.challenge] or [defaults.challenge] table", label)
	}
	if wildcard && c.Challenge.Type != "" && c.Challenge.Type != challengeDNS01 {
		v.at(p+".domains", "%s: wildcard names need the dns-01 challenge, not %s", label, c.Challenge.Type)
	}
	c.ipath = p
	return c, len(v.errs) == n0
}

// pick returns the certificate's value if set, else the default's.
func pick[T any](own, def *T) *T {
	if own != nil {
		return own
	}
	return def
}

// challenge validates a challenge table at ipath.
func (v *validator) challenge(p, label string, cf *challengeFile) challengeConfig {
	c := challengeConfig{
		Type:                 strings.ToLower(strings.TrimSpace(cf.Type)),
		Webroot:              cf.Webroot,
		Listen:               cf.Listen,
		Provider:             strings.ToLower(strings.TrimSpace(cf.Provider)),
		Env:                  cf.Env,
		Resolvers:            cf.Resolvers,
		SkipPropagationCheck: cf.SkipPropagationCheck,
		ipath:                p,
	}
	if cf.PropagationDelay != nil {
		c.PropagationDelay = time.Duration(*cf.PropagationDelay)
	}
	if cf.PropagationTimeout != nil {
		c.PropagationTimeout = time.Duration(*cf.PropagationTimeout)
	}
	dnsOnly := func() {
		for _, k := range []struct {
			set  bool
			name string
		}{
			{cf.Provider != "", "provider"}, {cf.Env != nil, "env"}, {cf.Resolvers != nil, "resolvers"},
			{cf.PropagationDelay != nil, "propagation_delay"}, {cf.PropagationTimeout != nil, "propagation_timeout"},
			{cf.SkipPropagationCheck, "skip_propagation_check"},
		} {
			if k.set {
				v.at(p+"."+k.name, "%s: challenge: %s applies to dns-01 only, not %s", label, k.name, c.Type)
			}
		}
	}
	switch c.Type {
	case challengeHTTP01:
		dnsOnly()
		switch {
		case c.Webroot != "" && c.Listen != "":
			v.at(p, "%s: challenge: http-01 takes webroot or listen, not both", label)
		case c.Webroot != "":
			if !filepath.IsAbs(c.Webroot) {
				v.at(p+".webroot", "%s: challenge: webroot %q must be an absolute path", label, c.Webroot)
			}
		case c.Listen != "":
			v.listen(p, label, c.Listen)
		default:
			v.at(p, "%s: challenge: http-01 needs webroot (a directory your web server serves) or listen (an address like \":80\")", label)
		}
	case challengeTLSALPN01:
		dnsOnly()
		if c.Webroot != "" {
			v.at(p+".webroot", "%s: challenge: webroot applies to http-01 only", label)
		}
		if c.Listen == "" {
			v.at(p, "%s: challenge: tls-alpn-01 needs listen (an address like \":443\")", label)
		} else {
			v.listen(p, label, c.Listen)
		}
	case challengeDNS01:
		if c.Webroot != "" || c.Listen != "" {
			v.at(p, "%s: challenge: webroot and listen do not apply to dns-01", label)
		}
		switch {
		case c.Provider == "":
			v.at(p, "%s: challenge: dns-01 needs provider (one of %s)", label, strings.Join(providerNames(), ", "))
		case !knownProvider(c.Provider):
			v.at(p+".provider", "%s: challenge: unknown DNS provider %q (this build has %s)", label, cf.Provider, strings.Join(providerNames(), ", "))
		default:
			v.dnsVars(p, label, c) // dnsregistry.go
		}
		for k := range c.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				v.at(p+".env", "%s: challenge: env: invalid variable name %q", label, k)
			}
		}
		for _, r := range c.Resolvers {
			if strings.TrimSpace(r) == "" {
				v.at(p+".resolvers", "%s: challenge: resolvers: empty entry", label)
			}
		}
	case "":
		v.at(p, "%s: challenge: type is required (http-01, tls-alpn-01 or dns-01)", label)
	default:
		v.at(p+".type", "%s: challenge: unknown type %q (want http-01, tls-alpn-01 or dns-01)", label, cf.Type)
	}
	return c
}

func (v *validator) listen(p, label, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		v.at(p+".listen", "%s: challenge: listen %q must be host:port, e.g. \":80\"", label, addr)
	}
}

// unwrapPath drops the *fs.PathError's repetition of the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
