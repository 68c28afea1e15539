package portholder

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// Describe describes, best effort, the process listening on TCP port
// port (decimal): "PID 1234 (nginx)", or "a socket of user www-data" when
// its process cannot be seen (another user's /proc/PID/fd is not
// readable without privileges), or "" when nothing is found. It reads
// /proc/net/tcp and tcp6 for a listening socket's inode, then
// /proc/*/fd for the process holding it.
func Describe(port string) string {
	return describeIn("/proc", port)
}

func describeIn(proc, port string) string {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return ""
	}
	want := fmt.Sprintf("%04X", p)
	inodes := map[string]string{} // inode → uid
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		listeningOn(filepath.Join(proc, f), want, inodes)
	}
	if len(inodes) == 0 {
		return ""
	}
	if pid, comm := socketOwner(proc, inodes); pid != "" {
		return fmt.Sprintf("PID %s (%s)", pid, comm)
	}
	for _, uid := range inodes {
		name := "uid " + uid
		if u, err := user.LookupId(uid); err == nil {
			name = u.Username
		}
		return fmt.Sprintf("a process of user %s (as root, `ss -ltnp 'sport = :%s'` shows which)", name, port)
	}
	return ""
}

// listeningOn adds to inodes the listening sockets of a /proc/net/tcp
// table whose local port is want (4 hex digits).
func listeningOn(path, want string, inodes map[string]string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "0A" { // 0A: TCP_LISTEN
			continue
		}
		if _, p, ok := strings.Cut(fs[1], ":"); ok && p == want && fs[9] != "0" {
			inodes[fs[9]] = fs[7]
		}
	}
}

// socketOwner finds a process with one of the socket inodes open.
func socketOwner(proc string, inodes map[string]string) (pid, comm string) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return "", ""
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		fdDir := filepath.Join(proc, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			ino, ok := strings.CutPrefix(link, "socket:[")
			if !ok {
				continue
			}
			if _, found := inodes[strings.TrimSuffix(ino, "]")]; found {
				b, _ := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
				return e.Name(), strings.TrimSpace(string(b))
			}
		}
	}
	return "", ""
}
