package atomicfs

// The on-disk layout of a lineage directory is defined here, once; every
// package that names an entry of a lineage (renew, lockfile, hooks, metrics)
// uses these names.

// Names of the five files in every generation, and of the stable links to them in
// the lineage directory.
const (
	CertFile      = "cert.pem"      // the leaf certificate
	ChainFile     = "chain.pem"     // the issuer certificates, possibly empty
	FullchainFile = "fullchain.pem" // cert.pem then chain.pem
	KeyFile       = "privkey.pem"   // the private key (key mode)
	CombinedFile  = "combined.pem"  // privkey.pem, cert.pem, chain.pem (key mode)
)

// Names of the other entries of a lineage directory that its users write.
const (
	// StateFile is the renewal state that package renew writes, atomically
	// and durably (a killed write leaves a temporary file Recover deletes).
	StateFile = "state.json"
	// LockFile is the lineage lock's file (flock(2), taken by renew);
	// it is never deleted, so it is never a leftover.
	LockFile = ".lock"
	// CurrentLink is the symbolic link to the served generation,
	// "generations/NNNNNN", replaced by one rename.
	CurrentLink = "current"
)

// stableFiles lists the five names in the order Install writes them.
var stableFiles = [...]string{CertFile, ChainFile, FullchainFile, KeyFile, CombinedFile}

const (
	generationsName = "generations"
	pendingKeyName  = "pending.key"
	currentTmpStem  = ".current.tmp-" // Activate's temporary symlink: .current.tmp-<rand>
	tmpInfix        = ".tmp-"         // temporary generation: .NNNNNN.tmp-<rand>
	seqWidth        = 6
)

// renameioTargets are names in the lineage directory that renameio may have been
// writing (and left a ".<name><digits>" temporary file for); any existing entry
// counts too.
var renameioTargets = [...]string{StateFile, pendingKeyName, CurrentLink, CertFile, ChainFile, FullchainFile, KeyFile, CombinedFile}

// leftover reports whether name, an entry of a lineage directory, is
// something a killed run may have left for [Store.Recover] or the pending
// key's owner to deal with: a hidden entry other than [LockFile] (Activate's
// temporary links, renameio's ".<name><digits>" temporary files and
// directories), or the pending key. It looks at the name only.
func leftover(name string) bool {
	return name == pendingKeyName || (len(name) > 0 && name[0] == '.' && name != LockFile)
}
