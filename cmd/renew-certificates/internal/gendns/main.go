// Command gendns generates renew-certificates' DNS-01 provider registry
// from lego's own metadata. It is run by `go generate` in
// cmd/renew-certificates (see dnsregistry.go) and writes, in the current
// directory:
//
//   - zz_gen_dns_providers.go: every lego provider whose package resolves
//     (build tag !renewkit_curated_dns), with its credentials, options,
//     required variables and a constructor;
//   - zz_gen_dns_curated.go: the same table for the curated providers only
//     (build tag renewkit_curated_dns), for a slim binary;
//   - DNS_PROVIDERS.md: the provider reference, with a note for each lego
//     provider left out and why.
//
// Input: the lego module at the version the command's go.mod requires, read
// from the module cache (`go list -m`), one NAME.toml per provider package.
// Whether a provider resolves is asked of the go command (`go list -e
// -deps` with a scratch copy of go.mod, so the real one is not touched):
// a provider whose package or dependencies do not resolve is dropped with a
// note, never left to break the build. After a regeneration that changes
// the set, run `go mod tidy` in cmd/renew-certificates.
//
// The required variables of a provider are read from its NewDNSProvider:
// when that function calls lego's env.Get or env.GetWithFallback in its own
// body (not in a branch), those names are what lego itself requires; other
// providers (several ways to authenticate, or credentials found elsewhere)
// are checked by lego when the provider is built.
//
// Crash safety: not applicable (a build-time tool; it writes its outputs
// with os.WriteFile, and a torn output fails to compile, never silently).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

const legoModule = "github.com/go-acme/lego/v5"

// curated are the providers renew-certificates builds itself (providers.go):
// they keep their own construction and TOML keys, and are in every build.
var curated = []string{"cloudflare", "digitalocean", "dnsupdate", "exec", "httpreq", "rfc2136", "route53"}

// excluded are lego providers that cannot serve an unattended run, and why.
var excluded = map[string]string{
	"manual": "interactive: it asks the user on the terminal to create each record and waits for Enter",
}

// meta is a provider's NAME.toml, as lego ships it.
type meta struct {
	Name          string
	Code          string
	URL           string
	Description   string
	Aliases       []string
	Example       string
	Configuration struct {
		Credentials map[string]string
		Additional  map[string]string
	}
	// order of the variables in the file
	credOrder, addOrder []string
}

// provider is one generated registry entry.
type provider struct {
	dir      string // package directory name
	pkg      string // import path
	m        meta
	required [][]string // each: a name and its fallbacks; nil if unknown
	known    bool       // required was read from NewDNSProvider
	dropped  string     // why it is not in this build
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gendns:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, version, err := legoDir()
	if err != nil {
		return err
	}
	root := filepath.Join(dir, "providers", "dns")
	ents, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("lego's providers: %w", err)
	}
	var ps []*provider
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		tf := filepath.Join(root, e.Name(), e.Name()+".toml")
		if _, err := os.Stat(tf); err != nil {
			continue // internal packages
		}
		p := &provider{dir: e.Name(), pkg: legoModule + "/providers/dns/" + e.Name()}
		md, err := toml.DecodeFile(tf, &p.m)
		if err != nil {
			return fmt.Errorf("%s: %w", tf, err)
		}
		for _, k := range md.Keys() {
			if len(k) == 3 && k[0] == "Configuration" {
				switch k[1] {
				case "Credentials":
					p.m.credOrder = append(p.m.credOrder, k[2])
				case "Additional":
					p.m.addOrder = append(p.m.addOrder, k[2])
				}
			}
		}
		if p.m.Code == "" {
			return fmt.Errorf("%s: no Code", tf)
		}
		var deprecated string
		p.required, p.known, deprecated, err = requiredVars(filepath.Join(root, e.Name()))
		if err != nil {
			return err
		}
		if deprecated != "" {
			// A provider lego deprecated (its service shut down) is not
			// registered: a user could only configure it to fail.
			p.dropped = "deprecated by lego: " + deprecated
		}
		ps = append(ps, p)
	}
	if err := resolve(ps); err != nil {
		return err
	}
	for _, p := range ps {
		if why, ok := excluded[p.m.Code]; ok {
			p.dropped = why
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].m.Code < ps[j].m.Code })
	if err := writeGo("zz_gen_dns_providers.go", "!renewkit_curated_dns", version, ps, false); err != nil {
		return err
	}
	if err := writeGo("zz_gen_dns_curated.go", "renewkit_curated_dns", version, ps, true); err != nil {
		return err
	}
	return writeDoc("DNS_PROVIDERS.md", version, ps)
}

// legoDir is the lego module's directory in the module cache and its version.
func legoDir() (string, string, error) {
	out, err := exec.Command("go", "list", "-m", "-json", legoModule).Output()
	if err != nil {
		return "", "", fmt.Errorf("go list -m %s: %w", legoModule, errText(err))
	}
	var m struct{ Dir, Version string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", "", fmt.Errorf("go list -m %s: %w", legoModule, err)
	}
	if m.Dir == "" {
		return "", "", fmt.Errorf("%s %s is not in the module cache: run `go mod download` in cmd/renew-certificates", legoModule, m.Version)
	}
	return m.Dir, m.Version, nil
}

func errText(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

// resolve marks the providers whose package, or a dependency of it, does
// not resolve through the module proxy. It asks `go list -e -deps` with a
// scratch copy of go.mod and go.sum (-mod=mod may add requirements there).
func resolve(ps []*provider) error {
	tmp, err := os.MkdirTemp("", "gendns")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("gendns runs in cmd/renew-certificates: %w", err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			return err
		}
	}
	args := []string{"list", "-modfile=" + filepath.Join(tmp, "go.mod"), "-mod=mod", "-e", "-deps", "-json=ImportPath,Error,DepsErrors"}
	for _, p := range ps {
		args = append(args, p.pkg)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go list -e -deps: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	type perr struct{ Err string }
	byPkg := map[string]*provider{}
	for _, p := range ps {
		byPkg[p.pkg] = p
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var pk struct {
			ImportPath string
			Error      *perr
			DepsErrors []*perr
		}
		if err := dec.Decode(&pk); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("go list -e -deps: %w", err)
		}
		p, ok := byPkg[pk.ImportPath]
		if !ok {
			continue
		}
		switch {
		case pk.Error != nil:
			p.dropped = pk.Error.Err
		case len(pk.DepsErrors) > 0:
			p.dropped = pk.DepsErrors[0].Err
		}
		if i := strings.IndexByte(p.dropped, '\n'); i >= 0 {
			p.dropped = p.dropped[:i]
		}
	}
	return nil
}

// requiredVars reads the variables a provider's NewDNSProvider requires
// unconditionally: the arguments of env.Get / env.GetWithFallback calls
// that are statements of its body (not nested in a branch). deprecated is
// the text of a "Deprecated:" paragraph in NewDNSProvider's doc, if any.
func requiredVars(dir string) (required [][]string, known bool, deprecated string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, false, "", fmt.Errorf("%s: %w", dir, err)
	}
	fset := token.NewFileSet()
	consts := map[string]ast.Expr{}
	var fn *ast.FuncDecl
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, false, "", fmt.Errorf("%s: %w", dir, err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, s := range d.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							consts[n.Name] = vs.Values[i]
						}
					}
				}
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.Name == "NewDNSProvider" {
					fn = d
				}
			}
		}
	}
	if fn != nil && fn.Doc != nil {
		if _, after, ok := strings.Cut(fn.Doc.Text(), "Deprecated:"); ok {
			deprecated = strings.TrimSpace(strings.SplitN(strings.TrimSpace(after), "\n\n", 2)[0])
			deprecated = strings.Join(strings.Fields(deprecated), " ")
		}
	}
	if fn == nil || fn.Body == nil {
		return nil, false, deprecated, nil
	}
	var eval func(e ast.Expr, depth int) (string, bool)
	eval = func(e ast.Expr, depth int) (string, bool) {
		if depth > 10 {
			return "", false
		}
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.Ident:
			x, ok := consts[e.Name]
			if !ok {
				return "", false
			}
			return eval(x, depth+1)
		case *ast.BinaryExpr:
			if e.Op != token.ADD {
				return "", false
			}
			a, ok1 := eval(e.X, depth+1)
			b, ok2 := eval(e.Y, depth+1)
			return a + b, ok1 && ok2
		case *ast.ParenExpr:
			return eval(e.X, depth+1)
		}
		return "", false
	}
	// Only the simple shape is trusted: a single env.Get (or
	// GetWithFallback) in the whole function, as a statement of its body,
	// with no return before it (an earlier return is another way in:
	// alidns's RAM role, cloudns's sub-user).
	isEnvGet := func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		x, ok := sel.X.(*ast.Ident)
		return ok && x.Name == "env" && (sel.Sel.Name == "Get" || sel.Sel.Name == "GetWithFallback")
	}
	calls := 0
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		if isEnvGet(n) {
			calls++
		}
		return true
	})
	if calls != 1 {
		return nil, false, deprecated, nil
	}
	var req [][]string
	found := false
	for _, st := range fn.Body.List {
		if !found {
			returns := false
			ast.Inspect(st, func(n ast.Node) bool {
				if _, ok := n.(*ast.ReturnStmt); ok {
					returns = true
				}
				return true
			})
			if returns {
				return nil, false, deprecated, nil
			}
		}
		as, ok := st.(*ast.AssignStmt)
		if !ok || len(as.Rhs) != 1 {
			continue
		}
		call, ok := as.Rhs[0].(*ast.CallExpr)
		if !ok {
			continue
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			continue
		}
		if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "env" {
			continue
		}
		switch sel.Sel.Name {
		case "Get":
			for _, a := range call.Args {
				s, ok := eval(a, 0)
				if !ok {
					return nil, false, deprecated, nil
				}
				req = append(req, []string{s})
			}
			found = true
		case "GetWithFallback":
			for _, a := range call.Args {
				cl, ok := a.(*ast.CompositeLit)
				if !ok {
					return nil, false, deprecated, nil
				}
				var g []string
				for _, el := range cl.Elts {
					s, ok := eval(el, 0)
					if !ok {
						return nil, false, deprecated, nil
					}
					g = append(g, s)
				}
				req = append(req, g)
			}
			found = true
		}
	}
	return req, found, deprecated, nil
}

func isCurated(code string) bool { return slices.Contains(curated, code) }

// writeGo writes the registry table, of every resolving provider or of
// the curated ones only.
func writeGo(name, tag, version string, ps []*provider, curatedOnly bool) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by gendns from lego %s's provider metadata; DO NOT EDIT.\n\n", version)
	fmt.Fprintf(&b, "//go:build %s\n\npackage main\n\n", tag)
	var imports []string
	if !curatedOnly {
		imports = append(imports, `"github.com/go-acme/lego/v5/challenge"`)
	}
	for _, p := range ps {
		if p.dropped == "" && !isCurated(p.m.Code) && !curatedOnly {
			imports = append(imports, fmt.Sprintf("%s %q", alias(p), p.pkg))
		}
	}
	if len(imports) > 0 {
		fmt.Fprintf(&b, "import (\n%s\n)\n\n", strings.Join(imports, "\n"))
	}
	fmt.Fprintf(&b, "// legoVersion is the lego release the DNS provider table was generated from.\nconst legoVersion = %q\n\n", version)
	b.WriteString("// dnsProviderTable lists the DNS-01 providers of this build: lego's metadata\n// for each, and a constructor for all but the curated ones (providers.go).\nfunc dnsProviderTable() []dnsProviderInfo {\n\treturn []dnsProviderInfo{\n")
	for _, p := range ps {
		if p.dropped != "" || (curatedOnly && !isCurated(p.m.Code)) {
			continue
		}
		fmt.Fprintf(&b, "{\nCode: %q,\nName: %q,\nURL: %q,\n", p.m.Code, p.m.Name, p.m.URL)
		if len(p.m.Aliases) > 0 {
			fmt.Fprintf(&b, "Aliases: %#v,\n", p.m.Aliases)
		}
		if d := strings.TrimSpace(p.m.Description); d != "" {
			fmt.Fprintf(&b, "Description: %q,\n", d)
		}
		writeVars(&b, "Credentials", p.m.credOrder, p.m.Configuration.Credentials)
		writeVars(&b, "Additional", p.m.addOrder, p.m.Configuration.Additional)
		if p.known {
			fmt.Fprintf(&b, "RequiredKnown: true,\n")
			if len(p.required) > 0 {
				fmt.Fprintf(&b, "Required: %#v,\n", p.required)
			}
		}
		fmt.Fprintf(&b, "Example: %q,\n", strings.TrimSpace(p.m.Example))
		if !isCurated(p.m.Code) && !curatedOnly {
			fmt.Fprintf(&b, "New: func() (challenge.Provider, error) { return %s.NewDNSProvider() },\n", alias(p))
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return os.WriteFile(name, src, 0o644)
}

func alias(p *provider) string { return "dns_" + p.dir }

func writeVars(b *bytes.Buffer, field string, order []string, m map[string]string) {
	if len(order) == 0 {
		return
	}
	fmt.Fprintf(b, "%s: []dnsVar{\n", field)
	for _, k := range order {
		fmt.Fprintf(b, "{%q, %q},\n", k, m[k])
	}
	b.WriteString("},\n")
}

// writeDoc writes the provider reference.
func writeDoc(name, version string, ps []*provider) error {
	var b bytes.Buffer
	n := 0
	for _, p := range ps {
		if p.dropped == "" {
			n++
		}
	}
	fmt.Fprintf(&b, "<!-- Code generated by gendns from lego %s's provider metadata; DO NOT EDIT. -->\n\n", version)
	fmt.Fprintf(&b, "# DNS-01 providers\n\n")
	fmt.Fprintf(&b, "renew-certificates has %d DNS providers: every one of lego %s's whose Go packages resolve, less those lego deprecated or that wait for a person (see the end).\n\n", n, version)
	b.WriteString(`Each is configured the way lego's CLI, Traefik and Caddy configure it: with lego's environment
variable names, either in the process environment or in the challenge's ` + "`env`" + ` table:

` + "```toml" + `
[defaults.challenge]             # or [certificate.challenge]
type = "dns-01"
provider = "ovh"
env = { OVH_ENDPOINT = "ovh-eu", OVH_APPLICATION_KEY_FILE = "/etc/renewkit/ovh-app-key" }
` + "```" + `

For every variable lego reads with its ` + "`_FILE`" + ` variant, ` + "`NAME_FILE`" + ` names a file that holds the value.
Secrets belong in the environment or in such files: a value written in the TOML is stored in clear in
the configuration file, so put it there only knowingly (and keep the file readable by root only).

**Required** variables are checked when the configuration is loaded: one that is missing is a
configuration error (exit 2) naming it, before any order. Providers marked *checked by lego* have
several ways to authenticate; lego checks their variables when the provider is built, which
renew-certificates does only when a DNS-01 challenge is solved (a failure then is a local error, not
retried). A dry run (` + "`-dry-run`" + `) checks the variables but not the provider's API (that would change
DNS records). ` + "`renew-certificates -help-dns CODE`" + ` prints one provider's variables and an example.

The curated providers (cloudflare, digitalocean, dnsupdate, exec, httpreq, rfc2136, route53) are
built by renew-certificates itself, with clearer errors; a build with ` + "`-tags renewkit_curated_dns`" + `
keeps only those (a smaller binary).

`)
	b.WriteString("| code | provider | required |\n|---|---|---|\n")
	for _, p := range ps {
		if p.dropped != "" {
			continue
		}
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s | %s |\n", p.m.Code, p.m.Code, p.m.Name, reqText(p))
	}
	for _, p := range ps {
		if p.dropped != "" {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n<a id=\"%s\"></a>`provider = %q`", p.m.Name, p.m.Code, p.m.Code)
		if len(p.m.Aliases) > 0 {
			fmt.Fprintf(&b, " (also %s)", strings.Join(p.m.Aliases, ", "))
		}
		if isCurated(p.m.Code) {
			b.WriteString(" — curated")
		}
		fmt.Fprintf(&b, " · %s\n\n", p.m.URL)
		if d := strings.TrimSpace(p.m.Description); d != "" {
			fmt.Fprintf(&b, "%s\n\n", d)
		}
		fmt.Fprintf(&b, "Required: %s.\n\n", reqText(p))
		docVars(&b, "Credentials", p.m.credOrder, p.m.Configuration.Credentials)
		docVars(&b, "Options", p.m.addOrder, p.m.Configuration.Additional)
	}
	b.WriteString("\n## Not in this build\n\nThese lego providers are left out, most because their Go packages do not resolve through the module\nproxy (regeneration drops a provider that stops resolving, with a note here, instead of breaking the build):\n\n")
	for _, p := range ps {
		if p.dropped != "" {
			fmt.Fprintf(&b, "- `%s` (%s): %s\n", p.m.Code, p.m.Name, p.dropped)
		}
	}
	return os.WriteFile(name, b.Bytes(), 0o644)
}

func reqText(p *provider) string {
	if !p.known {
		return "*checked by lego*"
	}
	if len(p.required) == 0 {
		return "none"
	}
	var s []string
	for _, g := range p.required {
		s = append(s, "`"+strings.Join(g, "` or `")+"`")
	}
	return strings.Join(s, ", ")
}

func docVars(b *bytes.Buffer, title string, order []string, m map[string]string) {
	if len(order) == 0 {
		return
	}
	fmt.Fprintf(b, "| %s | |\n|---|---|\n", title)
	for _, k := range order {
		fmt.Fprintf(b, "| `%s` | %s |\n", k, strings.ReplaceAll(m[k], "|", "\\|"))
	}
	b.WriteString("\n")
}
