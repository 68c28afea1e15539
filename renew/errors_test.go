package renew

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/renewkit/renewkit/backoff"
)

func TestLocalErrorIsPermanentAndLocal(t *testing.T) {
	err := error(&LocalError{What: "webroot /srv/www", Err: fs.ErrPermission, Fix: "chown it"})
	if !errors.Is(err, ErrLocal) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("errors.Is failed for %v", err)
	}
	if c := backoff.ClassOf(err); c != backoff.ClassPermanent {
		t.Fatalf("ClassOf = %v, want permanent", c)
	}
	if got, want := err.Error(), "webroot /srv/www: permission denied (fix: chown it)"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
