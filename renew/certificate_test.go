package renew

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateDomain(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	good := []string{
		"example.org", "example.org.", "Example.ORG", "*.example.org", "_acme.example.org",
		"xn--bcher-kva.example", "192.0.2.1", "::1", label63 + ".example",
	}
	bad := []string{
		"", ".", "a..b.example", ".a.example", "-a.example", "a-.example", "*", "*.*.example",
		"a.*.example", "w*.example", "ex ample.org", " example.org", "bücher.example", "a/b.example",
		strings.Repeat("a", 64) + ".example", strings.Repeat(label63+".", 4) + "example",
	}
	for _, d := range good {
		if err := ValidateDomain(d); err != nil {
			t.Errorf("ValidateDomain(%q) = %v, want nil", d, err)
		}
	}
	for _, d := range bad {
		if err := ValidateDomain(d); err == nil {
			t.Errorf("ValidateDomain(%q) = nil, want an error", d)
		}
	}
}

// TestRunRejectsNamesNoCAIssues: a Certificate whose domain no CA would
// issue for fails validation before any order, as the CLI's configuration
// check does.
func TestRunRejectsNamesNoCAIssues(t *testing.T) {
	for _, d := range []string{"-a.example", "a..b.example", "a.*.example", "bücher.example"} {
		e := newEnv(t)
		res := e.run(Certificate{Name: "x", Domains: []string{d}})
		if !errors.Is(res.Err, errInvalidCertificate) || !strings.Contains(res.Err.Error(), d) {
			t.Errorf("domain %q: Run error %v, want errInvalidCertificate naming it", d, res.Err)
		}
		if n := e.ca.issues.Load(); n != 0 {
			t.Errorf("domain %q: %d orders", d, n)
		}
	}
}
