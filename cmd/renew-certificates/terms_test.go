package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/renew/acmeissuer"
)

func TestLibraryMessagesInConfigKeys(t *testing.T) {
	for _, msg := range []string{
		"the CA requires agreement to its terms of service at https://ca/tos: read them and set Config.AgreeTOS",
		"acmeissuer: invalid configuration: HTTP01.Webroot: stat /x: no such file or directory",
		"acmeissuer: invalid configuration: AccountDir: mkdir /x: permission denied",
		"the CA requires External Account Binding: set Config.EAB to the key ID and HMAC key it gave you",
	} {
		inner := backoff.Permanent(fmt.Errorf("%w: %s", acmeissuer.ErrConfig, msg))
		err := inCLITerms(inner)
		for _, goName := range []string{"Config.", "HTTP01.", "AccountDir", "Webroot:"} {
			if strings.Contains(err.Error(), goName) {
				t.Errorf("%q still says %s", err, goName)
			}
		}
		if !errors.Is(err, acmeissuer.ErrConfig) || !errors.Is(err, backoff.ErrPermanent) {
			t.Errorf("%q lost its classification", err)
		}
	}
	if inCLITerms(nil) != nil {
		t.Error("a nil error became non-nil")
	}
}
