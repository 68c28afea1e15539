package main

import (
	"fmt"
	"strings"
	"testing"
)

// benchConfig is a configuration of n certificates with two names each,
// sharing the defaults, as a large installation has.
func benchConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("server = \"staging\"\nroot = \"/var/lib/renewkit\"\n\n[defaults]\nhooks = [[\"systemctl\", \"reload\", \"nginx\"]]\n\n[defaults.challenge]\ntype = \"http-01\"\nwebroot = \"/var/www/html\"\n")
	for i := range n {
		fmt.Fprintf(&b, "\n[[certificate]]\nname = \"site%d\"\ndomains = [\"site%d.example.org\", \"www.site%d.example.org\"]\n", i, i, i)
	}
	return []byte(b.String())
}

// BenchmarkParseConfig measures loading a configuration: part of every
// run, including the twice-daily one where nothing is due.
func BenchmarkParseConfig(b *testing.B) {
	for _, n := range []int{100, 10000} {
		data := benchConfig(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := parseConfig("bench.toml", data, overrides{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
