package main

import (
	"errors"
	"strings"

	"github.com/renewkit/renewkit/renew"
)

// acmeKeys maps the fields of acmeissuer.Config that its configuration
// errors name (renew.ConfigError.Field) to this program's configuration
// keys, as the operator wrote them: an operator reads agree_tos and
// webroot, never AgreeTOS or HTTP01.Webroot. key is how a message names
// it; ipath is where the key is in the file: a top-level key, or one of
// the certificate's challenge table (starting with ".").
var acmeKeys = map[string]struct{ key, ipath string }{
	"DirectoryURL":    {"server", "server"},
	"Email":           {"email", "email"},
	"AgreeTOS":        {"agree_tos", "agree_tos"},
	"EAB":             {"[eab] key_id and hmac (or hmac_file, hmac_env)", "eab"},
	"EAB.HMAC":        {"[eab] hmac", "eab"},
	"AccountDir":      {"account_dir", "account_dir"},
	"CARoots":         {"ca_file", "ca_file"},
	"CARootsPEM":      {"ca_file", "ca_file"},
	"HTTP01":          {"challenge", ""},
	"HTTP01.Webroot":  {"webroot", ".webroot"},
	"HTTP01.Addr":     {"listen", ".listen"},
	"TLSALPN01":       {"challenge", ""},
	"TLSALPN01.Addr":  {"listen", ".listen"},
	"DNS01":           {"challenge", ""},
	"DNS01.Resolvers": {"resolvers", ".resolvers"},
	"DNS01.Provider":  {"provider", ".provider"},
}

// configKey is the configuration key of an acmeissuer field, and the
// certificate whose route it is in ("" for the Config's own fields).
func configKey(field string) (key, ipath, cert string) {
	if rest, ok := strings.CutPrefix(field, `Routes["`); ok {
		if i := strings.Index(rest, `"].`); i >= 0 {
			cert, field = rest[:i], rest[i+3:]
		}
	}
	if strings.HasPrefix(field, "DNS01.Provider.") {
		field = "DNS01.Provider" // the provider's own settings: its env table
	}
	if k, ok := acmeKeys[field]; ok {
		return k.key, k.ipath, cert
	}
	return field, "", cert
}

// cliError is an error from the library whose configuration error (a
// *renew.ConfigError in its chain) is named by this program's key.
// errors.Is and errors.As see the original.
type cliError struct{ err error }

func (e cliError) Error() string {
	msg := e.err.Error()
	ce, ok := errors.AsType[*renew.ConfigError](e.err)
	if !ok {
		return msg
	}
	key, _, _ := configKey(ce.Field)
	if strings.Contains(msg, ce.Error()) && ce.Err != nil {
		return strings.Replace(msg, ce.Error(), key+": "+ce.Err.Error(), 1)
	}
	return msg + " (configuration key: " + key + ")"
}

func (e cliError) Unwrap() error { return e.err }

// inCLITerms wraps err, if any, as a cliError.
func inCLITerms(err error) error {
	if err == nil {
		return nil
	}
	return cliError{err}
}
