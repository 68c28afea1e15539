package atomicfs

import (
	"strings"
	"testing"
)

// FuzzParseSeq: generation and temporary directory names come from a
// directory anyone with write access can fill. A parsed number is always in
// range and names exactly one directory, and the next number never
// overflows.
func FuzzParseSeq(f *testing.F) {
	for _, s := range []string{"000001", "999999", "1000000", "999999999", "1000000000",
		"9223372036854775807", "000000", "-00001", "0x0001", ".000043.tmp-abc", ".999999999.tmp-", ".1000000000.tmp-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if n, ok := parseSeq(name); ok {
			if n < 1 || n > maxGeneration {
				t.Fatalf("parseSeq(%q) = %d, out of [1, %d]", name, n, maxGeneration)
			}
			if formatSeq(n) != name {
				t.Fatalf("parseSeq(%q) = %d, which formats as %q", name, n, formatSeq(n))
			}
			if n+1 <= n {
				t.Fatalf("parseSeq(%q) = %d: the next number overflows", name, n)
			}
		}
		if n, ok := parseTempSeq(name); ok {
			if n < 1 || n > maxGeneration {
				t.Fatalf("parseTempSeq(%q) = %d, out of range", name, n)
			}
			if !strings.HasPrefix(name, "."+formatSeq(n)+tmpInfix) {
				t.Fatalf("parseTempSeq(%q) = %d, but the name does not start with .%s%s", name, n, formatSeq(n), tmpInfix)
			}
		}
	})
}
