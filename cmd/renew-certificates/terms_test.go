package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/renewkit/renewkit/backoff"
	"github.com/renewkit/renewkit/renew"
)

// TestLibraryMessagesInConfigKeys: a configuration error of the library
// (a *renew.ConfigError naming a Go field) reads in this program's keys,
// by the table, and keeps its classification.
func TestLibraryMessagesInConfigKeys(t *testing.T) {
	for _, tt := range []struct {
		field, want string
	}{
		{"AgreeTOS", "agree_tos: "},
		{"HTTP01.Webroot", "webroot: "},
		{`Routes["www"].HTTP01.Webroot`, "webroot: "},
		{"AccountDir", "account_dir: "},
		{"EAB", "[eab] key_id and hmac"},
		{`Routes["dns"].DNS01.Provider.TSIGSecret`, "provider: "},
	} {
		inner := backoff.Permanent(fmt.Errorf("%w: %w", renew.ErrConfig, &renew.ConfigError{Field: tt.field, Err: errors.New("bad")}))
		err := inCLITerms(inner)
		if !strings.Contains(err.Error(), tt.want+"bad") && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %q, want %q", tt.field, err, tt.want)
		}
		for _, goName := range []string{"Config.", "HTTP01.", "AccountDir", "Webroot:", "Routes["} {
			if strings.Contains(err.Error(), goName) {
				t.Errorf("%q still says %s", err, goName)
			}
		}
		if !errors.Is(err, renew.ErrConfig) || !errors.Is(err, backoff.ErrPermanent) {
			t.Errorf("%q lost its classification", err)
		}
	}
	if inCLITerms(nil) != nil {
		t.Error("a nil error became non-nil")
	}
}

// TestConfigKeyLocatesRoutes: a route's field is located in that
// certificate's challenge table, a Config field at its top-level key.
func TestConfigKeyLocatesRoutes(t *testing.T) {
	for _, tt := range []struct{ field, key, ipath, cert string }{
		{`Routes["www"].HTTP01.Webroot`, "webroot", ".webroot", "www"},
		{`Routes["a.b"].TLSALPN01.Addr`, "listen", ".listen", "a.b"},
		{"AccountDir", "account_dir", "account_dir", ""},
		{"Unknown.Field", "Unknown.Field", "", ""},
	} {
		key, ipath, cert := configKey(tt.field)
		if key != tt.key || ipath != tt.ipath || cert != tt.cert {
			t.Errorf("configKey(%s) = %q %q %q, want %q %q %q", tt.field, key, ipath, cert, tt.key, tt.ipath, tt.cert)
		}
	}
}
