// Package textclip bounds text taken from outside (a CA's error page, a
// hook's output, an error message) before it reaches a log, a state file or
// a record: at most n bytes, cut on a UTF-8 boundary, with invalid UTF-8
// replaced, and a mark where text was left out. It is the one place the
// module does this.
//
// It keeps no state and writes nothing; there is no crash window in it.
package textclip

import (
	"strings"
	"unicode/utf8"
)

// mark stands where text was left out.
const mark = " […] "

// Head returns s, with invalid UTF-8 replaced by U+FFFD, if that has at most
// n bytes; otherwise its beginning followed by a mark, n bytes at most in
// all (the mark is left out when n is too small to hold it).
func Head(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	m := strings.TrimRight(mark, " ")
	if n < 2*len(m) {
		return cut(s, n)
	}
	return cut(s, n-len(m)) + m
}

// Ends is Head for text whose end matters as much as its beginning (a
// program's output: the reason it failed comes last): it keeps the first
// and the last part of s around a mark, n bytes at most in all.
func Ends(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	if n < 4*len(mark) {
		return Head(s, n)
	}
	half := (n - len(mark)) / 2
	return cut(s, half) + mark + tail(s, half)
}

// cut returns the longest prefix of valid UTF-8 s of at most n bytes that
// ends on a rune boundary.
func cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	for n < len(s) && n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// tail returns the longest suffix of valid UTF-8 s of at most n bytes that
// starts on a rune boundary.
func tail(s string, n int) string {
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}
