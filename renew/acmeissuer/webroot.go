package acmeissuer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/renewkit/renewkit/renew"
)

// challengeDir is where HTTP-01 tokens go under a webroot.
const challengeDir = ".well-known/acme-challenge"

// webrootProvider is the HTTP-01 challenge.Provider that writes token
// files under a webroot, like lego's webroot provider but safe in a webroot
// that someone else may write to (the renewer often runs as root):
//
//   - .well-known and .well-known/acme-challenge may be symbolic links only
//     when they are owned by this process's user (or root): a link planted
//     by another user is refused, so the renewer never creates or truncates
//     a file where that user points it;
//   - otherwise the challenge directory is opened through an os.Root on the
//     webroot, which never leaves it whatever is renamed meanwhile;
//   - a token file is opened with O_NOFOLLOW (a symbolic link in its place
//     is refused, not followed) and created 0644 for the web server.
//
// Safe for concurrent use.
type webrootProvider struct {
	dir string
}

func newWebrootProvider(dir string) (*webrootProvider, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("webroot %s: %w", dir, err)
	}
	return &webrootProvider{dir: dir}, nil
}

// Present writes the token file.
func (w *webrootProvider) Present(_ context.Context, _, token, keyAuth string) error {
	if err := checkToken(token); err != nil {
		return err
	}
	r, err := openChallengeDir(w.dir, true)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := r.OpenFile(token, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o644)
	if err != nil {
		return &renew.LocalError{What: "webroot challenge file " + filepath.Join(w.dir, challengeDir, token), Err: err,
			Fix: "the challenge directory must be a plain directory this user can write; remove whatever stands in the token file's place"}
	}
	_, err = f.WriteString(keyAuth)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("webroot challenge file %s: %w", filepath.Join(w.dir, challengeDir, token), err)
	}
	return nil
}

// CleanUp removes the token file.
func (w *webrootProvider) CleanUp(_ context.Context, _, token, _ string) error {
	if err := checkToken(token); err != nil {
		return err
	}
	r, err := openChallengeDir(w.dir, false)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Remove(token); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove webroot challenge file %s: %w", filepath.Join(w.dir, challengeDir, token), err)
	}
	return nil
}

// checkToken refuses a token that is not one file name (RFC 8555 tokens
// are base64url).
func checkToken(token string) error {
	if token == "" || token == "." || token == ".." || strings.ContainsAny(token, "/\\\x00") {
		return fmt.Errorf("http-01 token %q is not a file name", token)
	}
	return nil
}

// openChallengeDir opens webroot/.well-known/acme-challenge, creating it
// (0755) when create is set, and refusing a symbolic link on the way that
// this process's user (or root) does not own.
func openChallengeDir(webroot string, create bool) (*os.Root, error) {
	followed, err := checkChallengeLinks(webroot)
	if err != nil {
		return nil, err
	}
	if followed {
		// Links this user owns: their target is trusted like the
		// configured webroot.
		r, err := os.OpenRoot(filepath.Join(webroot, challengeDir))
		if err != nil {
			return nil, &renew.LocalError{What: "webroot challenge directory " + filepath.Join(webroot, challengeDir), Err: err}
		}
		return r, nil
	}
	root, err := os.OpenRoot(webroot)
	if err != nil {
		return nil, &renew.LocalError{What: "webroot " + webroot, Err: err}
	}
	defer root.Close()
	if create {
		if err := root.MkdirAll(challengeDir, 0o755); err != nil {
			return nil, &renew.LocalError{What: "webroot challenge directory " + filepath.Join(webroot, challengeDir), Err: err,
				Fix: "create it for this user: install -d " + filepath.Join(webroot, challengeDir)}
		}
	}
	r, err := root.OpenRoot(challengeDir)
	if err != nil {
		return nil, &renew.LocalError{What: "webroot challenge directory " + filepath.Join(webroot, challengeDir), Err: err}
	}
	return r, nil
}

// checkChallengeLinks checks .well-known and .well-known/acme-challenge
// under webroot: a symbolic link owned by another user than this
// process's (or root) is a *renew.LocalError. followed reports a link that
// is trusted (its target may lie outside the webroot).
func checkChallengeLinks(webroot string) (followed bool, err error) {
	p := webroot
	for _, part := range strings.Split(challengeDir, "/") {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return followed, nil
		}
		if err != nil {
			return false, &renew.LocalError{What: "webroot challenge directory " + p, Err: err}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		uid, ok := fileOwner(fi)
		if !ok || (uid != os.Geteuid() && uid != 0) {
			return false, &renew.LocalError{What: "webroot challenge directory " + p,
				Err: fmt.Errorf("is a symbolic link owned by %s, not by this process's user (%s): the renewer would create and truncate files where that user points it", userName(uid), userName(os.Geteuid())),
				Fix: "replace it with a directory (rm " + p + " && install -d " + filepath.Join(webroot, challengeDir) + "), or, if the link is yours, make it this user's: chown -h " + userName(os.Geteuid()) + " " + p}
		}
		followed = true
	}
	return followed, nil
}

// webrootHint adds to a failed HTTP-01 validation of a webroot challenge
// the URL the CA fetched, the webroot the token was written to and what to
// check: the CA's own text (a 404, a refused connection) does not say that
// the usual cause is a web server that does not serve the webroot.
func webrootHint(p *presented, err error) error {
	wp, ok := p.solver.provider.(*webrootProvider)
	if err == nil || !ok {
		return err
	}
	var e *Error
	if !errors.As(err, &e) || e.ProblemType == "" || e.Status >= 500 {
		return err // not the CA's verdict on the challenge
	}
	switch strings.TrimPrefix(e.ProblemType, problemNS) {
	case "unauthorized", "connection", "incorrectResponse", "dns", "tls":
	default:
		return err
	}
	e.Detail += fmt.Sprintf(" (the CA fetched http://%s/%s/%s, which this run had written to %s; check that the web server answering for %s on port 80 serves %s at / (nginx: root %s; or location /.well-known/acme-challenge/ { root %s; }), and that %s resolves to it)",
		p.ident, challengeDir, p.chal.Token, filepath.Join(wp.dir, challengeDir, p.chal.Token), p.ident, wp.dir, wp.dir, wp.dir, p.ident)
	return err
}
