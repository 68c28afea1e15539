package served

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// A reload log is what a test deploy hook leaves behind: one line per run,
//
//	SERIAL GENERATION ok
//	SERIAL GENERATION bad: WHY
//
// SERIAL and GENERATION come from the hook's RENEWKIT_SERIAL and
// RENEWKIT_GENERATION; "ok" says that the lineage's fullchain.pem and
// privkey.pem, read as nginx reads them at the instant of the reload,
// matched and held that serial.

// RecordReload is a deploy hook's body: it reads the served files of the
// lineage named by the hook environment (RENEWED_LINEAGE, RENEWKIT_SERIAL,
// RENEWKIT_GENERATION) as a reloading web server would and appends one line
// to logFile. The append is one write(2) on an O_APPEND file, so concurrent
// hooks of different lineages do not interleave.
func RecordReload(logFile string) error {
	serial, gen, dir := os.Getenv("RENEWKIT_SERIAL"), os.Getenv("RENEWKIT_GENERATION"), os.Getenv("RENEWED_LINEAGE")
	if serial == "" || dir == "" {
		return errors.New("RENEWKIT_SERIAL or RENEWED_LINEAGE is not set: run this as a renewkit deploy hook")
	}
	verdict := "ok"
	s, err := ReadPair(dir)
	switch {
	case err != nil:
		verdict = "bad: " + strings.Join(strings.Fields(err.Error()), " ")
	case s.Serial != serial:
		// A later generation may legitimately be served by now only if a
		// later run replaced it; a hook runs under the lineage lock, so
		// the served one must be this one or a newer one being replayed.
		verdict = "served " + s.Serial
	}
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %s %s\n", serial, gen, verdict)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Reload is one line of a reload log.
type Reload struct {
	Serial, Generation string
	// Verdict is "ok", "served SERIAL" (the hook of an older generation
	// replayed while a newer one is served) or "bad: WHY".
	Verdict string
}

// ReadReloads reads a reload log. A missing file is an empty log.
func ReadReloads(logFile string) ([]Reload, error) {
	f, err := os.Open(logFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Reload
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 3)
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s: malformed line %q", logFile, sc.Text())
		}
		out = append(out, Reload{Serial: fields[0], Generation: fields[1], Verdict: fields[2]})
	}
	return out, sc.Err()
}

// ReloadedSerials returns the serials of a reload log with their number of
// runs.
func ReloadedSerials(rs []Reload) map[string]int {
	m := make(map[string]int, len(rs))
	for _, r := range rs {
		m[r.Serial]++
	}
	return m
}
