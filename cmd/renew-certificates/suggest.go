package main

import (
	"reflect"
	"strings"
)

// suggestKey returns the known key closest to the unknown key at path (a
// TOML key path, e.g. ["certificate", "agree_to"]) among the keys of the
// same table, or "" when none is close enough to be a likely misspelling.
// Keys of free-form tables (a challenge's env) are never unknown.
func suggestKey(path []string) string {
	if len(path) == 0 {
		return ""
	}
	t := reflect.TypeFor[fileConfig]()
	for _, k := range path[:len(path)-1] {
		f, ok := tomlField(t, k)
		if !ok {
			return ""
		}
		t = f.Type
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
	}
	bad := strings.ToLower(path[len(path)-1])
	best, bestDist := "", 0
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		d := editDistance(bad, name)
		if best == "" || d < bestDist {
			best, bestDist = name, d
		}
	}
	// One edit in a short key, about a third of a long one: agree_to,
	// agre_tos, webrot, propagation_timout; never a different word.
	if best == "" || bestDist > max(1, len(best)/3) {
		return ""
	}
	return best
}

// tomlField finds the field of struct type t whose toml tag is key.
func tomlField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// editDistance is the Damerau-Levenshtein distance (optimal string
// alignment) between a and b, counted in bytes: keys are ASCII.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
