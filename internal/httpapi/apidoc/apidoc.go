// Package apidoc holds the OpenAPI document of the HTTP API and the API
// explorer that renders it, embedded so the binary serves both offline.
package apidoc

import (
	"embed"
	_ "embed"
)

// OpenAPI is the OpenAPI 3.1 document, written by hand. A test in
// internal/httpapi fails when a route is missing from it or a response
// does not match it.
//
//go:embed openapi.json
var OpenAPI []byte

// Explorer is Swagger UI (vendored, see VENDORED.md) and its start page.
//
//go:embed explorer
var Explorer embed.FS
