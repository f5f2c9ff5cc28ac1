package suggest

import (
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"kind", "kind", 0},
		{"knd", "kind", 1},
		{"kidn", "kind", 1}, // a swap is one edit
		{"request_denid", "request_denied", 1},
		{"requets_denied", "request_denied", 1},
		{"", "abc", 3},
		{"abc", "", 3},
		{"flaw", "lawn", 2},
		{"other", "OTHER", 5},
	}
	for _, tt := range tests {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Distance(tt.b, tt.a); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestClosest(t *testing.T) {
	opts := []string{"kind", "source", "limit"}
	for in, want := range map[string]string{"knd": "kind", "sorce": "source", "limt": "limit", "Kind": "kind"} {
		if got, _ := Closest(in, opts); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
	if got, d := Closest("x", nil); got != "" || d != -1 {
		t.Errorf("Closest with no options = %q, %d", got, d)
	}
	// A huge input costs a bounded amount.
	if _, d := Closest(strings.Repeat("a", 1<<20), opts); d < 250 {
		t.Errorf("distance of a huge input = %d", d)
	}
}
