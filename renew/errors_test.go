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

// TestConfigErrorNamesTheField: a Renewer that cannot run says which field
// is at fault in a *ConfigError, under ErrConfig.
func TestConfigErrorNamesTheField(t *testing.T) {
	for _, tt := range []struct {
		r     *Renewer
		field string
	}{
		{&Renewer{}, "Root"},
		{&Renewer{Root: t.TempDir(), Keep: -1}, "Keep"},
	} {
		err := tt.r.Preflight(t.Context(), Certificate{Name: "a", Domains: []string{"a.example"}})
		ce, ok := errors.AsType[*ConfigError](err)
		if !errors.Is(err, ErrConfig) || !ok || ce.Field != tt.field {
			t.Errorf("Preflight: %v, want ErrConfig naming %s", err, tt.field)
		}
	}
}
