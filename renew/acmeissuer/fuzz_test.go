package acmeissuer

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzAccountRecord parses arbitrary account.json contents: never a panic;
// an accepted record names its account and directory and survives a
// round trip; an error names the file and stays short.
func FuzzAccountRecord(f *testing.F) {
	f.Add([]byte(`{"url":"https://ca.test/acct/1","directory_url":"https://ca.test/dir","email":"a@b.test","created":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"url":"https://ca.test/acct/1","directory_url":"https://ca.test/dir"}`))
	f.Add([]byte(`{"url":"","directory_url":"https://ca.test/dir"}`))
	f.Add([]byte(`{"url":1}`))
	f.Add([]byte(`{"created":"not a time","url":"u","directory_url":"d"}`))
	f.Add([]byte(`null`))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(``))
	const path = "/acct/account.json"
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := parseAccountRecord(path, data)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, path) || len(msg) > 1024 {
				t.Fatalf("error %q does not name the file or is long", msg)
			}
			return
		}
		if rec.URL == "" || rec.DirectoryURL == "" {
			t.Fatalf("accepted a record without url or directory_url: %+v", rec)
		}
		out, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("marshal %+v: %v", rec, err)
		}
		again, err := parseAccountRecord(path, out)
		if err != nil {
			t.Fatalf("re-parse %s: %v", out, err)
		}
		if again.URL != rec.URL || again.DirectoryURL != rec.DirectoryURL || again.Email != rec.Email || !again.Created.Equal(rec.Created) {
			t.Fatalf("round trip changed %+v into %+v", rec, again)
		}
	})
}

// FuzzParseRetryAfter checks parseRetryAfter over arbitrary header values:
// never negative; delay-seconds as sent (saturating); an HTTP-date as its
// distance from now, or 0 when past; anything else 0.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	f.Add("120", now.Unix())
	f.Add(" 5 ", now.Unix())
	f.Add("0", now.Unix())
	f.Add("-1", now.Unix())
	f.Add("+7", now.Unix())
	f.Add("99999999999999999999", now.Unix())
	f.Add("9223372036", now.Unix())
	f.Add("Fri, 27 Nov 2026 03:10:00 GMT", now.Unix())
	f.Add("Fri, 27 Nov 2026 02:10:00 GMT", now.Unix())
	f.Add("Friday, 27-Nov-26 03:10:00 GMT", now.Unix())
	f.Add("Fri Nov 27 03:10:00 2026", now.Unix())
	f.Add("Mon, 01 Jan 10000 00:00:00 GMT", int64(math.MinInt64/2))
	f.Add("soon", now.Unix())
	f.Fuzz(func(t *testing.T, v string, nowUnix int64) {
		now := time.Unix(nowUnix%(1<<40), 0)
		got := parseRetryAfter(v, now)
		if got < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, negative", v, got)
		}
		s := strings.TrimSpace(v)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			want := time.Duration(0)
			if n > 0 {
				want = time.Duration(min(n, math.MaxInt64/int64(time.Second))) * time.Second
			}
			if got != want {
				t.Fatalf("parseRetryAfter(%q) = %v, want %v", v, got, want)
			}
			return
		}
		if at, err := http.ParseTime(s); err == nil {
			if d := at.Sub(now); d > 0 && got != d || d <= 0 && got != 0 {
				t.Fatalf("parseRetryAfter(%q) at %v = %v, want %v", v, now, got, max(d, 0))
			}
			return
		}
		if s != "" && got != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v for a value that is neither seconds nor a date", v, got)
		}
	})
}
