package acmeissuer

import (
	"fmt"
	"io"
	"io/fs"

	"github.com/renewkit/renewkit/atomicfs"
	"github.com/renewkit/renewkit/renew"
)

// maxAccountFile bounds account.key and account.json: a few hundred bytes
// each (an RSA 4096 key in PEM is about 3.3 KiB).
const maxAccountFile = 64 << 10

// Permission bits refused on the files of the account directory, beyond
// the group and others write bits atomicfs.CheckFile always refuses.
const (
	privateKeyBits fs.FileMode = 0o077 // the account key: nobody else reads it
	publicBits     fs.FileMode = 0     // account.json
)

// readAccountFile reads a file of the account directory without trusting
// it: it is opened without following a symbolic link and without blocking
// (a FIFO cannot hang the run), must be a regular file passing
// atomicfs.CheckFile (owned by this user, not writable by others, none of
// the private bits), and is read through a limit. A missing file gives an
// error matching fs.ErrNotExist; a refused one, an error matching
// atomicfs.ErrInsecure and renew.ErrLocal.
func readAccountFile(path string, private fs.FileMode) ([]byte, error) {
	f, err := openNoFollow(path)
	if err != nil {
		if isSymlinkErr(err) {
			return nil, local(fmt.Errorf("%w: %s is a symbolic link; put the file itself there", atomicfs.ErrInsecure, path))
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := atomicfs.CheckFile(path, fi, private); err != nil {
		return nil, local(err)
	}
	if fi.Size() > maxAccountFile {
		return nil, local(fmt.Errorf("%s is %d bytes, more than the %d an account file can be", path, fi.Size(), maxAccountFile))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAccountFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxAccountFile {
		return nil, local(fmt.Errorf("%s grew past %d bytes while being read", path, maxAccountFile))
	}
	return data, nil
}

// local marks err as a failure caused on this machine.
func local(err error) error {
	return &renew.LocalError{What: "ACME account", Err: err}
}
