package acmeissuer

import "github.com/renewkit/renewkit/internal/portholder"

// portHolder describes the process listening on TCP port (decimal), or "".
func portHolder(port string) string { return portholder.Describe(port) }
