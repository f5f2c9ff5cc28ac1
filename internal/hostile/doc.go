// Package hostile mounts attacks on the real audit-stream binary, over real
// sockets, and checks that the server stays healthy: slow and broken request
// bodies, connection floods, huge events, idle streams by the thousand,
// unbounded reads, a full disk, signals, and clients without the right to do
// what they try. Each test starts its own server (internal/e2e) with the
// flags that make its attack quick to mount, and asserts what an operator
// would watch: that /healthz and appends keep answering, that memory stays
// bounded, that nothing is lost and that refusals are 4xx, not 5xx.
//
// The package has tests only.
package hostile
