package main

import "strings"

// acmeTerms translates acmeissuer's names of its Config fields, which its
// messages use, to this program's configuration keys: an operator reads
// agree_tos and webroot, never Config.AgreeTOS or HTTP01.Webroot. Longer
// names come first so that a prefix does not win.
var acmeTerms = strings.NewReplacer(
	"Config.AgreeTOS", "agree_tos = true",
	"Config.EAB to the key ID and HMAC key it gave you", "[eab] key_id and hmac (or hmac_file, hmac_env) to what it gave you",
	"Config.EAB", "[eab]",
	"Config.Email", "email",
	"EAB needs both KeyID and HMAC", "[eab] needs key_id and an hmac",
	"EAB.HMAC", "[eab] hmac",
	"DirectoryURL", "server",
	"AccountDir", "account_dir",
	"HTTP01.Webroot", "webroot",
	"HTTP01.Addr", "listen",
	"TLSALPN01.Addr", "listen",
	"HTTP01: set Addr or Webroot", "http-01: set listen or webroot",
	"DNS01.Resolvers", "resolvers",
	"DNS01.Provider", "provider",
)

// cliError is an error from the library whose message speaks in
// configuration keys. errors.Is and errors.As see the original.
type cliError struct{ err error }

func (e cliError) Error() string { return acmeTerms.Replace(e.err.Error()) }
func (e cliError) Unwrap() error { return e.err }

// inCLITerms wraps err, if any, as a cliError.
func inCLITerms(err error) error {
	if err == nil {
		return nil
	}
	return cliError{err}
}
