package main

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite CONFIG.md from configref.go")

// TestConfigReferenceMatchesParser holds the reference and the parser
// together: the sample decodes with no unknown key and validates, and every
// key the parser knows appears in the sample.
func TestConfigReferenceMatchesParser(t *testing.T) {
	var fc fileConfig
	md, err := toml.Decode(configSample, &fc)
	if err != nil {
		t.Fatalf("the reference's sample does not decode: %v", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Fatalf("the reference shows keys the parser does not know: %v", und)
	}
	// The whole validation too (the sample's group may not exist here).
	sample := strings.Replace(configSample, `group = "ssl-cert"`, `group = "0"`, 1)
	t.Setenv("RENEWKIT_EAB_HMAC", "c2VjcmV0")
	if _, err := parseConfig("reference", []byte(sample), overrides{}); err != nil {
		t.Fatalf("the reference's sample is not a valid configuration: %v", err)
	}
	var shown []string
	for _, k := range md.Keys() {
		shown = append(shown, k.String())
	}
	for _, k := range tomlKeys(reflect.TypeFor[fileConfig](), "") {
		if k == "defaults.name" || k == "defaults.domains" {
			continue // refused in [defaults]
		}
		// [defaults] takes every certificate key; one example of each
		// suffices between the two tables.
		alt := k
		if s, ok := strings.CutPrefix(k, "defaults."); ok {
			alt = "certificate." + s
		} else if s, ok := strings.CutPrefix(k, "certificate."); ok {
			alt = "defaults." + s
		}
		// Alternatives (eab's hmac, hmac_file) are shown in a comment.
		last := k[strings.LastIndexByte(k, '.')+1:]
		inComment := strings.Contains(configSample, "# exactly one of: ") && strings.Contains(configSample, " "+last+" = ")
		if !slices.Contains(shown, k) && !slices.Contains(shown, alt) && !inComment {
			t.Errorf("the parser knows %s, the reference does not show it", k)
		}
	}
}

// tomlKeys lists the dotted TOML keys of a struct type, tables included.
func tomlKeys(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		out = append(out, key)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !ft.Implements(reflect.TypeFor[toml.Unmarshaler]()) && !reflect.PointerTo(ft).Implements(reflect.TypeFor[toml.Unmarshaler]()) {
			out = append(out, tomlKeys(ft, key+".")...)
		}
	}
	return out
}

// TestConfigMarkdown checks that CONFIG.md is the generated reference
// (rewrite it with -update).
func TestConfigMarkdown(t *testing.T) {
	want := []byte(configMarkdown())
	if *update {
		if err := os.WriteFile("CONFIG.md", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("CONFIG.md is not the generated reference: run go test ./cmd/renew-certificates -run TestConfigMarkdown -update")
	}
}

func TestHelpConfigPrintsTheReference(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"-help-config"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"agree_tos = true", "[certificate.challenge]", "webroot", "preflight", "rfc2136"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-help-config does not show %q", want)
		}
	}
	var usage bytes.Buffer
	run(t.Context(), []string{"-help"}, &usage, &errb)
	if !strings.Contains(usage.String(), "-help-config") || strings.Contains(usage.String(), "go doc") {
		t.Errorf("-help should point to -help-config, not go doc:\n%s", usage.String())
	}
}
