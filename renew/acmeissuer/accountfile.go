package acmeissuer

import (
	"errors"
	"io/fs"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/internal/safefile"
	"github.com/renewkit/renewkit/renew"
)

// maxAccountFile bounds account.key and account.json: a few hundred bytes
// each (an RSA 4096 key in PEM is about 3.3 KiB).
const maxAccountFile = 64 << 10

// Permission bits refused on the files of the account directory, beyond
// the group and others write bits safefile.CheckFile always refuses.
const (
	privateKeyBits fs.FileMode = 0o077 // the account key: nobody else reads it
	publicBits     fs.FileMode = 0     // account.json
)

// readAccountFile reads a file of the account directory without trusting
// it: safefile.ReadTrustedFile opens it without following a symbolic link
// and without blocking (a FIFO cannot hang the run), requires a regular file
// passing safefile.CheckFile (owned by this user, not writable by others,
// none of the private bits), and reads through a limit. A missing file
// gives an error matching fs.ErrNotExist; a refused one, an error matching
// atomicfs.ErrInsecure (or ErrNotRegular, ErrTooLarge) and renew.ErrLocal.
func readAccountFile(path string, private fs.FileMode) ([]byte, error) {
	data, err := safefile.ReadTrustedFile(path, maxAccountFile, private)
	if err != nil && (errors.Is(err, atomicfs.ErrInsecure) || errors.Is(err, safefile.ErrNotRegular) || errors.Is(err, safefile.ErrTooLarge)) {
		return nil, local(err)
	}
	return data, err
}

// local marks err as a failure caused on this machine.
func local(err error) error {
	return &renew.LocalError{What: "ACME account", Err: err}
}
