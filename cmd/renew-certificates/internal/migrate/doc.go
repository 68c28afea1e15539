// Package migrate takes over another ACME client's certificates and
// account: certbot's configuration directory (/etc/letsencrypt) or lego's
// (.lego). It is the CLI's -import: [Read] reads the other client's state as
// that client writes it, [Import] prints the plan and, when asked to,
// adopts every lineage it can (renew.Renewer.Adopt: the current files
// become generation 1, verified like an issued certificate, nothing is
// ordered), adopts the account (acmeissuer.Config.AdoptAccount: the CA sees
// the same account afterwards) and writes the renew-certificates
// configuration for them.
//
// # Guarantees
//
// Nothing under the other client's directory is changed: it is only read,
// and a file or directory there that another user (not this one, not
// root) owns, or that its group or others may write, is refused for the
// lineage or account it belongs to, never followed. Every lineage is
// judged on its own: one that cannot be imported (a truncated file, a key
// that does not match, an account that is missing, an installer plugin) is
// reported with the reason, and nothing is written for it.
//
// Crash safety: the account and each lineage are written by the library's
// own atomic, durable steps, and the configuration file last, by one
// atomic rename (fsynced file and directory). A process killed during an
// import leaves lineages that no configuration names yet, so no timer run
// orders anything for them; running the import again adopts them again
// (Adopt recognises its own generation) and writes the configuration.
// Running it twice is harmless: a lineage the configuration already names
// is skipped and reported.
package migrate
