//go:build linux

package portholder

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestDescribeNamesThisProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	got := Describe(port)
	if want := "PID " + strconv.Itoa(os.Getpid()) + " ("; !strings.HasPrefix(got, want) {
		t.Errorf("Describe(%s) = %q, want it to start with %q", port, got, want)
	}
}

func TestDescribeNothingListening(t *testing.T) {
	if got := describeIn(t.TempDir(), "80"); got != "" {
		t.Errorf("no /proc tables: %q, want \"\"", got)
	}
	if got := Describe("not-a-port"); got != "" {
		t.Errorf("bad port: %q, want \"\"", got)
	}
}
