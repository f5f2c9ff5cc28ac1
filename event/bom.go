package event

import "bytes"

// bom is the UTF-8 encoding of U+FEFF, the byte-order mark that Windows
// tools and some editors write at the start of a UTF-8 file.
var bom = []byte{0xEF, 0xBB, 0xBF}

// TrimBOM returns b without a leading UTF-8 byte-order mark. Bodies, batches
// and files are read through it: the mark is not part of the JSON, and
// JSON (RFC 8259) lets a parser ignore it.
func TrimBOM(b []byte) []byte {
	return bytes.TrimPrefix(b, bom)
}
