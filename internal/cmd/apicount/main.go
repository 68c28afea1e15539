// Command apicount lists the top-level exported names (constants,
// variables, functions and types; methods and fields are not counted) of
// the library's packages and how many there are, and reports exported names
// without a doc comment.
//
// Usage, from the module root:
//
//	go run ./internal/cmd/apicount [-v] [DIR...]
//
// With no DIR it counts every public package of the library (lockfile,
// atomicfs, expiry, hooks, backoff, renew, renew/acmeissuer,
// renew/acmetest, fleet, metrics): the exported-name budget covers them
// all. It exits 1 when an exported name has no doc comment.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// library is every public package: what the exported-name budget covers.
var library = []string{"lockfile", "atomicfs", "expiry", "hooks", "backoff", "renew", "renew/acmeissuer", "renew/acmetest", "fleet", "metrics"}

func main() {
	verbose := flag.Bool("v", false, "list every name")
	flag.Parse()
	dirs := flag.Args()
	undocumented := 0
	if len(dirs) > 0 {
		n, u, err := report(dirs, *verbose)
		if err != nil {
			fmt.Fprintln(os.Stderr, "apicount:", err)
			os.Exit(2)
		}
		fmt.Printf("total %d\n", n)
		undocumented += u
	} else {
		for _, set := range [][]string{library} {
			n, u, err := report(set, *verbose)
			if err != nil {
				fmt.Fprintln(os.Stderr, "apicount:", err)
				os.Exit(2)
			}
			fmt.Printf("total %d (%s)\n\n", n, strings.Join(set, ", "))
			undocumented += u
		}
	}
	if undocumented > 0 {
		os.Exit(1)
	}
}

// report prints each directory's exported names and returns their number
// and how many lack a doc comment.
func report(dirs []string, verbose bool) (total, undocumented int, err error) {
	for _, dir := range dirs {
		names, undoc, err := exported(dir)
		if err != nil {
			return 0, 0, err
		}
		total += len(names)
		fmt.Printf("%-18s %3d", dir, len(names))
		if verbose {
			fmt.Printf("  %s", strings.Join(names, " "))
		}
		fmt.Println()
		for _, u := range undoc {
			fmt.Printf("  undocumented: %s.%s\n", dir, u)
		}
		undocumented += len(undoc)
	}
	return total, undocumented, nil
}

// exported returns the sorted top-level exported names declared in the
// non-test Go files of dir (all build tags), and those without a doc
// comment.
func exported(dir string) (names, undocumented []string, err error) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, nil, err
	}
	var files []*ast.File
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
	}
	seen := map[string]bool{}
	add := func(name string, documented bool) {
		if !ast.IsExported(name) || seen[name] {
			return
		}
		seen[name] = true
		names = append(names, name)
		if !documented {
			undocumented = append(undocumented, name)
		}
	}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					add(d.Name.Name, d.Doc != nil)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						add(s.Name.Name, d.Doc != nil || s.Doc != nil || s.Comment != nil)
					case *ast.ValueSpec:
						for _, n := range s.Names {
							add(n.Name, d.Doc != nil || s.Doc != nil || s.Comment != nil)
						}
					}
				}
			}
		}
	}
	slices.Sort(names)
	return names, undocumented, nil
}
