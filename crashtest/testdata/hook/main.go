// Command hook is the crash suite's deploy hook, built once by TestMain.
//
//	hook reload LOGFILE   read the served files as a web server reloading
//	                      would, append "SERIAL GENERATION VERDICT" to LOGFILE
//	hook hang             never exit (until killed)
//	hook spew BYTES [fail] print BYTES bytes of text, then exit 0 (1 with fail)
//	hook fail             print a message and exit 1
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/renewkit/renewkit/internal/served"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hook reload LOGFILE | hang | spew BYTES | fail")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "reload":
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: hook reload LOGFILE")
			os.Exit(2)
		}
		if err := served.RecordReload(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "hook:", err)
			os.Exit(1)
		}
	case "hang":
		select {}
	case "spew":
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "hook spew:", err)
			os.Exit(2)
		}
		w := bufio.NewWriterSize(os.Stdout, 1<<16)
		line := strings.Repeat("spew ", 15) + "\n"
		for i := 0; i < n; i += len(line) {
			w.WriteString(line)
		}
		w.Flush()
		if len(os.Args) > 3 && os.Args[3] == "fail" {
			fmt.Println("hook: spewed, now failing on purpose")
			os.Exit(1)
		}
	case "fail":
		fmt.Println("hook: failing on purpose")
		os.Exit(1)
	default:
		fmt.Fprintf(os.Stderr, "hook: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}
