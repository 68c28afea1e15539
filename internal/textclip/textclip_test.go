package textclip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHeadAndEnds(t *testing.T) {
	inputs := []string{
		"",
		"short",
		strings.Repeat("é", 40), // 2 bytes a rune
		strings.Repeat("a", 100) + "\xff\xfe" + strings.Repeat("€", 30), // invalid UTF-8 inside
	}
	for _, in := range inputs {
		for n := range 90 {
			for name, f := range map[string]func(string, int) string{"Head": Head, "Ends": Ends} {
				got := f(in, n)
				if !utf8.ValidString(got) {
					t.Fatalf("%s(%q, %d) = %q: invalid UTF-8", name, in, n, got)
				}
				valid := strings.ToValidUTF8(in, "\uFFFD")
				if len(valid) <= n {
					if got != valid {
						t.Fatalf("%s(%q, %d) = %q, want it whole", name, in, n, got)
					}
					continue
				}
				if len(got) > n {
					t.Fatalf("%s(%q, %d) = %q: %d bytes", name, in, n, got, len(got))
				}
				if n >= 20 && (len(got) < n-8 || !strings.Contains(got, "[…]")) {
					t.Fatalf("%s(%q, %d) = %q: want about %d bytes with the mark", name, in, n, got, n)
				}
			}
		}
	}
	if got := Ends("begin "+strings.Repeat("x", 100)+" the reason", 40); !strings.HasPrefix(got, "begin") || !strings.HasSuffix(got, "the reason") {
		t.Errorf("Ends kept %q, want the beginning and the end", got)
	}
}
