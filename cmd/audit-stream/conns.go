package main

import (
	"log/slog"
	"net"
	"strconv"
	"syscall"

	"github.com/audit-stream/audit-stream/internal/connlimit"
)

// fdReserve is the file descriptors kept for everything but client
// connections: the database and its WAL, the lock and key files, log output.
const fdReserve = 64

// limitConns caps the open client connections at limit, or at what the
// open-file limit leaves room for if that is lower: a server that runs out of
// descriptors cannot accept at all, and its health check fails with the rest.
// Past the cap a plain-HTTP client gets an immediate 503; under TLS the
// connection is closed, since a plain answer would be noise to a TLS client.
func limitConns(ln net.Listener, limit int, tls bool, log *slog.Logger) net.Listener {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		// The Go runtime has already raised the soft limit to the hard one.
		if room := int(min(lim.Cur, 1<<30)) - fdReserve; room < limit {
			log.Warn("open-file limit lower than --max-conns: lowering the connection cap", "max_conns", limit, "nofile", lim.Cur, "cap", max(room, 1))
			limit = max(room, 1)
		}
	}
	var refusal []byte
	if !tls {
		body := `{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"too many open connections (--max-conns); retry shortly"}` + "\n"
		refusal = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
			"Content-Type: application/problem+json\r\n" +
			"Retry-After: 1\r\n" +
			"Connection: close\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	}
	return connlimit.New(ln, limit, refusal)
}
