package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Size limits of records, checked before decoding: a value larger than its
// limit is refused with a [*RecordError] naming the key.
const (
	// MaxBundleSize bounds a generation bundle (certificate, chain, sealed
	// key). etcd refuses requests over 1.5 MiB by default anyway.
	MaxBundleSize = 1 << 20
	// MaxStateSize bounds every other record (meta, journal, backoff, ARI,
	// lock value).
	MaxStateSize = 64 << 10
	// MaxErrorText bounds Backoff.LastError; longer text is cut on write.
	MaxErrorText = 1024
)

// recordVersion is the version of every record this package writes and the
// only one it reads, lock values excepted (lockVersion). Version 2 records
// are authenticated as a whole (see [Sealer] and the package doc); version
// 1 records were not, and are read as absent (legacyVersion).
const recordVersion = 2

// legacyVersion is the unauthenticated record format of earlier releases:
// such a record is read as if it were absent (with a warning) and replaced
// by the next write, never believed.
const legacyVersion = 1

// lockVersion is the version of lock values. A lock value is advice (the
// holder's node name and start time, for messages): the lock is the key's
// existence on a lease, which no signature could add to, so lock values
// are not authenticated and stay in the format every release reads.
const lockVersion = 1

// MaxGeneration bounds generation numbers: a record claiming more is
// refused, and a publish that would need more fails saying so. At one
// publish a second it lasts 285 million years; its purpose is that no
// arithmetic on a number read from etcd can overflow.
const MaxGeneration = 1<<53 - 1

// MaxBackoffDelay bounds the fleet's cross-run backoff as the local one is
// bounded (renew's 24 h cap on a CA's Retry-After and on the doubling
// backoff): a backoff record's not_before later than its last_failure plus
// this is read as last_failure plus this.
const MaxBackoffDelay = 24 * time.Hour

// Lineage identifies a lineage and the names its certificate must carry:
// writes for other names are refused (a misconfigured node must not publish
// another site's certificate); records for other names are read with their
// names (Meta.Names, Journal.Names), for the reader to replace rather than
// install.
type Lineage struct {
	Name    string   // the lineage name, as in the local lineage directory
	Domains []string // the names, in any order; required
}

// Meta describes a generation: what a nothing-due check needs, without the
// certificate bytes.
type Meta struct {
	Number    int64     `json:"number"`     // generation number, increasing by at least 1 per publish
	Serial    string    `json:"serial"`     // certificate serial number, hex
	Names     []string  `json:"names"`      // the certificate's DNS names, sorted
	NotBefore time.Time `json:"not_before"` // certificate validity
	NotAfter  time.Time `json:"not_after"`
	IssuedBy  string    `json:"issued_by"` // the node that published it
	Published time.Time `json:"published"` // when it was published
	// CertSHA256 and ChainSHA256 are the SHA-256 of the generation's
	// certificate and chain PEM, hex: the meta record is bound to the
	// bundle it describes. Set by PublishGeneration.
	CertSHA256  string `json:"cert_sha256"`
	ChainSHA256 string `json:"chain_sha256"`
}

// Generation is the fleet's current certificate of a lineage: the
// certificate, its chain and its private key (unsealed in memory; sealed in
// etcd).
type Generation struct {
	Meta
	CertPEM  []byte // the leaf
	ChainPEM []byte // the issuer chain
	KeyPEM   []byte // the private key, PEM; sealed before it reaches etcd
}

// Journal is the fleet-wide order journal of a lineage: written before an
// order is finalized so that any node that takes the lock over finishes the
// order instead of placing a new one.
type Journal struct {
	OrderURL string
	Names    []string // sorted
	Created  time.Time
	Node     string // the node that placed the order
	KeyPEM   []byte // the order's private key, PEM; sealed in etcd
}

// Backoff is the fleet-wide cross-run backoff of a lineage: while NotBefore
// is in the future, no node orders.
type Backoff struct {
	Failures    int       `json:"failures"`
	LastFailure time.Time `json:"last_failure"`
	NotBefore   time.Time `json:"not_before"`
	LastError   string    `json:"last_error"` // cut to MaxErrorText bytes on write
	Node        string    `json:"node"`       // the node that failed last
	// FailedConfig identifies the configuration the last failure happened
	// under (renew's configuration fingerprint): a node whose configuration
	// differs (someone fixed it) is not held back by this backoff.
	FailedConfig string `json:"failed_config"`
}

// ARI is the ACME Renewal Information last fetched for the certificate with
// Serial (RFC 9773).
type ARI struct {
	Serial      string    `json:"serial"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	NextCheck   time.Time `json:"next_check"`  // the CA's Retry-After
	Explanation string    `json:"explanation"` // explanationURL, if any
	Fetched     time.Time `json:"fetched"`
}

// wire forms: what is stored, version and lineage first.

type metaRecord struct {
	V       int    `json:"v"`
	Lineage string `json:"lineage"`
	Meta
}

type bundleRecord struct {
	V        int    `json:"v"`
	Lineage  string `json:"lineage"`
	Meta     Meta   `json:"meta"`
	CertPEM  string `json:"cert"`
	ChainPEM string `json:"chain"`
	Key      sealed `json:"key"`
}

type journalRecord struct {
	V        int       `json:"v"`
	Lineage  string    `json:"lineage"`
	OrderURL string    `json:"order_url"`
	Names    []string  `json:"names"`
	Created  time.Time `json:"created"`
	Node     string    `json:"node"`
	Key      sealed    `json:"key"`
}

type backoffRecord struct {
	V       int    `json:"v"`
	Lineage string `json:"lineage"`
	Backoff
}

type ariRecord struct {
	V       int    `json:"v"`
	Lineage string `json:"lineage"`
	ARI
}

type lockRecord struct {
	V     int       `json:"v"`
	Node  string    `json:"node"`
	Since time.Time `json:"since"`
}

// encode marshals a record. Records are plain structs of strings, times and
// numbers, so marshalling cannot fail.
func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("fleet: encode record: " + err.Error()) // unreachable: see above
	}
	return string(b)
}

// decode strictly decodes the value of key into v, a record struct with a
// "v" field: at most max bytes, version recordVersion, no unknown fields,
// nothing after the value. One strict pass; the version is looked at
// separately only to explain a failure (a newer version's new fields).
func decode(key string, value []byte, max int, v any) error {
	return decodeVersion(key, value, max, v, recordVersion)
}

// decodeVersion is decode for records of version want.
func decodeVersion(key string, value []byte, max int, v any, want int) error {
	if len(value) > max {
		return recordErr(key, "%d bytes, more than the limit of %d", len(value), max)
	}
	var head struct {
		V int `json:"v"`
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && len(bytes.TrimSpace(value[dec.InputOffset():])) > 0 {
		err = errors.New("data after the record")
	}
	if err != nil {
		if jerr := json.Unmarshal(value, &head); jerr != nil {
			return recordErr(key, "not a JSON record: %w", jerr)
		}
		if head.V != want {
			return recordErr(key, "record version %d, this program reads version %d only", head.V, want)
		}
		return recordErr(key, "decode: %w", err)
	}
	if ver := recordVersionOf(v); ver != want {
		return recordErr(key, "record version %d, this program reads version %d only", ver, want)
	}
	return nil
}

// versioned is implemented by every record struct.
type versioned interface{ version() int }

func (r *metaRecord) version() int    { return r.V }
func (r *bundleRecord) version() int  { return r.V }
func (r *journalRecord) version() int { return r.V }
func (r *backoffRecord) version() int { return r.V }
func (r *ariRecord) version() int     { return r.V }
func (r *lockRecord) version() int    { return r.V }

func recordVersionOf(v any) int {
	if r, ok := v.(versioned); ok {
		return r.version()
	}
	return -1
}

// checkLineage refuses a record stored for another lineage (a copied value).
func checkLineage(key, got, want string) error {
	if got != want {
		return recordErr(key, "record of lineage %q, stored under lineage %q", got, want)
	}
	return nil
}

// checkNames refuses a record whose names are not exactly the lineage's.
func checkNames(key string, l Lineage, got []string) error {
	if !slices.Equal(sortedNames(got), sortedNames(l.Domains)) {
		return recordErr(key, "record for names %v, lineage %q expects %v", sortedNames(got), l.Name, sortedNames(l.Domains))
	}
	return nil
}

// sortedNames returns the names lower-cased, sorted and without duplicates.
func sortedNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// keyspace lays out the etcd keys of a fleet under root (Config.Prefix +
// "v1/"):
//
//	root/state/NAME/lock     the lock: the holder's lease key (lockRecord)
//	root/state/NAME/meta     the current generation's Meta
//	root/state/NAME/journal  the order journal
//	root/state/NAME/backoff  the cross-run backoff
//	root/state/NAME/ari      the ARI state
//	root/bundle/NAME         the current generation: certificate, chain, sealed key
//	root/account/HASH        the fleet's ACME account key for one CA (accountRecord)
//
// Everything a nothing-due check needs is under root/state/: one listing and one range read
// returns it for every lineage. The bundle, the only large value, is read
// only to install a generation.
type keyspace struct{ root string }

// Kind names a lineage's record: the last element of its state key.
type Kind string

// The records of a lineage under root/state/NAME/.
const (
	KindLock    Kind = "lock"
	KindMeta    Kind = "meta"
	KindJournal Kind = "journal"
	KindBackoff Kind = "backoff"
	KindARI     Kind = "ari"
)

func (k keyspace) statePrefix() string { return k.root + "state/" }
func (k keyspace) state(name string, kind Kind) string {
	return k.root + "state/" + name + "/" + string(kind)
}
func (k keyspace) bundle(name string) string { return k.root + "bundle/" + name }

// lineagePrefix is the prefix of every state key of lineage name.
func (k keyspace) lineagePrefix(name string) string { return k.root + "state/" + name + "/" }

// splitState splits a state key into lineage name and kind.
func (k keyspace) splitState(key string) (name string, kind Kind, ok bool) {
	rest, ok := strings.CutPrefix(key, k.statePrefix())
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], Kind(rest[i+1:]), true
}

// checkLineageArg refuses a Lineage argument without a valid name or names.
func checkLineageArg(l Lineage) error {
	if err := checkName(l.Name); err != nil {
		return err
	}
	if len(l.Domains) == 0 {
		return fmt.Errorf("fleet: lineage %q: no domain names given (records are checked against them)", l.Name)
	}
	return nil
}

// checkName refuses lineage names that would not map to one key element.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 ||
		strings.ContainsAny(name, "/\\\x00") || !utf8.ValidString(name) {
		return fmt.Errorf("fleet: invalid lineage name %q: must be one plain path element of at most 255 bytes", name)
	}
	return nil
}
