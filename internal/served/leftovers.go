package served

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Leftovers lists what a killed renewal may leave in the lineage directory
// dir and what the next successful run must have removed: hidden entries
// other than .lock (temporary files, links and generation directories) in
// dir and in dir/generations, a pending.key (the key of an order not yet
// installed), and anything in generations/ that is not a generation
// directory (six digits). Names are relative to dir.
func Leftovers(dir string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if n == "pending.key" || strings.HasPrefix(n, ".") && n != ".lock" {
			out = append(out, n)
		}
	}
	gens, _ := os.ReadDir(filepath.Join(dir, "generations"))
	for _, e := range gens {
		n := e.Name()
		if _, err := strconv.Atoi(n); err != nil || !e.IsDir() || len(n) != 6 {
			out = append(out, filepath.Join("generations", n))
		}
	}
	return out
}
