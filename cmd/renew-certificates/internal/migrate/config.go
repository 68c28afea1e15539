package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/renewkit/renewkit/internal/durable"
)

// writeConfig writes the configuration for the imported lineages: a new
// file, or the existing one with their [[certificate]] tables appended,
// replaced by one atomic rename (the file and its directory fsynced).
func writeConfig(o Options, st *State, server string, acct *Account, exists bool, done []*Lineage) error {
	var b bytes.Buffer
	if exists {
		old, err := os.ReadFile(o.Config)
		if err != nil {
			return err
		}
		b.Write(old)
		if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "\n# Imported from %s at %s on %s.\n", st.Tool, st.From, time.Now().UTC().Format(time.DateOnly))
	} else {
		fmt.Fprintf(&b, "# renew-certificates configuration, imported from %s at %s on %s\n", st.Tool, st.From, time.Now().UTC().Format(time.DateOnly))
		fmt.Fprintf(&b, "# by renew-certificates -import. Reference: renew-certificates -help-config.\n\n")
		fmt.Fprintf(&b, "server = %s\n", q(server))
		if acct.Email != "" {
			fmt.Fprintf(&b, "email = %s\n", q(acct.Email))
		}
		fmt.Fprintf(&b, "# The account was registered by %s, which requires agreeing to the CA's terms.\nagree_tos = true\n", st.Tool)
		fmt.Fprintf(&b, "root = %s\n", q(o.Root))
		fmt.Fprintf(&b, "# %s's account %s (%s)\naccount_dir = %s\n", st.Tool, acct.ID, acct.URL, q(o.AccountDir))
		if o.CAFile != "" {
			fmt.Fprintf(&b, "ca_file = %s\n", q(o.CAFile))
		}
	}
	for _, l := range done {
		fmt.Fprintf(&b, "\n[[certificate]]\n# from %s (serial %s, expires %s)\n", l.Source, l.Serial, l.NotAfter.UTC().Format(time.RFC3339))
		fmt.Fprintf(&b, "name = %s\ndomains = %s\nkey_type = %s\n", q(l.Name), qs(l.Domains), q(string(l.KeyType)))
		if l.ReuseKey {
			b.WriteString("reuse_key = true\n")
		}
		if l.Policy != "" {
			fmt.Fprintf(&b, "policy = %s\n", q(l.Policy))
		}
		if len(l.Hooks) > 0 {
			parts := make([]string, len(l.Hooks))
			for i, h := range l.Hooks {
				parts[i] = qs(h)
			}
			fmt.Fprintf(&b, "hooks = [%s]\n", strings.Join(parts, ", "))
		}
		for _, n := range l.Notes {
			fmt.Fprintf(&b, "# note: %s\n", n)
		}
		fmt.Fprintf(&b, "[certificate.challenge]\ntype = %s\n", q(l.Challenge.Type))
		if l.Challenge.Webroot != "" {
			fmt.Fprintf(&b, "webroot = %s\n", q(l.Challenge.Webroot))
		}
		if l.Challenge.Listen != "" {
			fmt.Fprintf(&b, "listen = %s\n", q(l.Challenge.Listen))
		}
	}
	return writeFileAtomic(o.Config, b.Bytes(), 0o644)
}

// q quotes s as a TOML basic string (a JSON string is one).
func q(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// qs quotes ss as a TOML array of strings.
func qs(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = q(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// writeFileAtomic writes data to path with durable.WriteFile (temporary
// file, fsync, rename, fsync of the directory), creating the directory
// (0755) when missing.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := durable.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
