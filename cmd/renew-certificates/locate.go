package main

import (
	"slices"
	"strconv"
	"strings"
)

// keyPos is where a key (or a table header) is defined in a TOML document.
type keyPos struct {
	// path is the key's path as BurntSushi/toml's MetaData reports it:
	// table names and keys, without array indices.
	path []string
	// ipath is the same path with the index of each array-of-tables
	// element, e.g. "certificate[1].challenge.type" (0-based).
	ipath string
	// line is the 1-based line of the key or header.
	line int
}

// keyIndex finds the lines of keys in a TOML document, for error messages:
// BurntSushi/toml reports positions for syntax and type errors but not for
// keys it did not decode, nor for problems found after decoding.
type keyIndex struct {
	keys []keyPos
}

// indexKeys scans src. It expects a document that BurntSushi/toml has
// parsed; on anything else it still terminates and returns what it could
// make sense of.
func indexKeys(src string) *keyIndex {
	s := &keyScanner{src: src, line: 1, arrays: map[string]int{}}
	s.document()
	return &keyIndex{keys: s.out}
}

// line returns the line of ipath, or of its nearest enclosing table or
// array element that has one, or 0.
func (x *keyIndex) line(ipath string) int {
	for p := ipath; p != ""; p = parentPath(p) {
		for _, k := range x.keys {
			if k.ipath == p {
				return k.line
			}
		}
	}
	return 0
}

// parentPath strips the last segment (".key" or "[n]") of an indexed path.
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// undecodedLines pairs each key in keys (MetaData.Undecoded: document
// order, no indices) with its line, taking occurrences in order so that
// the same key in two array elements gets both lines. 0 means not found.
func (x *keyIndex) undecodedLines(keys [][]string) []int {
	used := make([]bool, len(x.keys))
	lines := make([]int, len(keys))
	for i, k := range keys {
		for j, kp := range x.keys {
			if !used[j] && slices.Equal(kp.path, k) {
				used[j] = true
				lines[i] = kp.line
				break
			}
		}
	}
	return lines
}

// keyScanner is a lenient recursive-descent reader of TOML structure: it
// records where keys and headers are and skips over values.
type keyScanner struct {
	src  string
	i    int
	line int
	out  []keyPos
	// arrays maps the indexed path of an array of tables to its current
	// (last) element index.
	arrays map[string]int
}

func (s *keyScanner) eof() bool { return s.i >= len(s.src) }

func (s *keyScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *keyScanner) advance() {
	if !s.eof() {
		if s.src[s.i] == '\n' {
			s.line++
		}
		s.i++
	}
}

// skipSpace skips blanks, and newlines and comments too when nl is set.
func (s *keyScanner) skipSpace(nl bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '\n' && nl:
			s.advance()
		case c == '#' && nl:
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		default:
			return
		}
	}
}

func (s *keyScanner) document() {
	var table []string
	itable := ""
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start := s.i
		if s.peek() == '[' {
			table, itable = s.header()
		} else {
			s.keyValue(table, itable)
			// Whatever follows a value on its line (a comment, or junk in
			// a document that is not valid TOML) is skipped.
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		}
		if s.i == start {
			s.advance() // never loop without progress
		}
	}
}

// header reads "[a.b]" or "[[a.b]]" and returns the table's path and
// indexed path.
func (s *keyScanner) header() ([]string, string) {
	line := s.line
	s.advance()
	array := s.peek() == '['
	if array {
		s.advance()
	}
	s.skipSpace(false)
	key := s.key()
	for !s.eof() && s.peek() != '\n' {
		s.advance() // "]" or "]]" and a comment
	}
	ipath := ""
	for i, seg := range key {
		ipath = joinPath(ipath, seg)
		if i == len(key)-1 && array {
			n, ok := s.arrays[ipath]
			if ok {
				n++
			}
			s.arrays[ipath] = n
		}
		if n, ok := s.arrays[ipath]; ok {
			ipath += "[" + strconv.Itoa(n) + "]"
		}
	}
	s.out = append(s.out, keyPos{path: key, ipath: ipath, line: line})
	return key, ipath
}

func joinPath(prefix, seg string) string {
	if prefix == "" {
		return seg
	}
	return prefix + "." + seg
}

// keyValue reads "key = value" under table.
func (s *keyScanner) keyValue(table []string, itable string) {
	line := s.line
	key := s.key()
	if len(key) == 0 {
		return
	}
	s.skipSpace(false)
	if s.peek() != '=' {
		return
	}
	s.advance()
	s.skipSpace(false)
	path := append(slices.Clone(table), key...)
	ipath := itable
	for _, seg := range key {
		ipath = joinPath(ipath, seg)
	}
	s.out = append(s.out, keyPos{path: path, ipath: ipath, line: line})
	s.value(path, ipath)
}

// key reads a dotted key of bare and quoted segments.
func (s *keyScanner) key() []string {
	var segs []string
	for {
		s.skipSpace(false)
		var seg string
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			seg = s.quoted(c)
		case isBare(c):
			start := s.i
			for !s.eof() && isBare(s.peek()) {
				s.advance()
			}
			seg = s.src[start:s.i]
		default:
			return segs
		}
		segs = append(segs, seg)
		s.skipSpace(false)
		if s.peek() != '.' {
			return segs
		}
		s.advance()
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// quoted reads a one-line basic ("...") or literal ('...') string and
// returns its content (escapes in basic strings are decoded when possible).
func (s *keyScanner) quoted(q byte) string {
	start := s.i
	s.advance()
	for !s.eof() && s.peek() != q && s.peek() != '\n' {
		if q == '"' && s.peek() == '\\' {
			s.advance()
		}
		s.advance()
	}
	s.advance()
	raw := s.src[start:min(s.i, len(s.src))]
	if q == '\'' {
		return strings.Trim(raw, "'")
	}
	if v, err := strconv.Unquote(raw); err == nil {
		return v
	}
	return strings.Trim(raw, `"`)
}

// value skips a value, recording the keys of inline tables under path.
func (s *keyScanner) value(path []string, ipath string) {
	switch c := s.peek(); c {
	case '"', '\'':
		if strings.HasPrefix(s.src[s.i:], string([]byte{c, c, c})) {
			s.i += 3
			end := strings.Index(s.src[s.i:], string([]byte{c, c, c}))
			if end < 0 {
				end = len(s.src) - s.i
			}
			s.line += strings.Count(s.src[s.i:s.i+end], "\n")
			s.i += end + 3
			// A closing delimiter may be followed by up to two more quotes.
			for n := 0; n < 2 && s.peek() == c; n++ {
				s.advance()
			}
			s.i = min(s.i, len(s.src))
			return
		}
		s.quoted(c)
	case '[':
		s.advance()
		s.items(']', func() { s.value(path, ipath) })
	case '{':
		s.advance()
		s.items('}', func() { s.keyValue(path, ipath) })
	default:
		// A number, boolean or date: up to a delimiter.
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.peek())) {
			s.advance()
		}
	}
}

// items scans the elements of an array or inline table up to the closing
// delimiter, calling item for each; item must consume at least one byte or
// one is skipped, so that a malformed file cannot stall the scanner.
func (s *keyScanner) items(closing byte, item func()) {
	for !s.eof() {
		s.skipSpace(true)
		switch s.peek() {
		case closing:
			s.advance()
			return
		case ',':
			s.advance()
		default:
			start := s.i
			item()
			if s.i == start {
				s.advance()
			}
		}
	}
}
