// Package suggest finds the closest of a few known names to a mistyped one,
// so that a refusal can say what was probably meant.
package suggest

// Closest returns the option nearest to s by edit distance (insertions,
// deletions, substitutions and swaps of adjacent characters, counted in
// bytes), the first such in options on a tie, and the distance; "" and -1
// when there are no options.
func Closest(s string, options []string) (string, int) {
	best, bestD := "", -1
	for _, o := range options {
		if d := Distance(s, o); bestD < 0 || d < bestD {
			best, bestD = o, d
		}
	}
	return best, bestD
}

// Distance is the optimal string alignment distance between a and b. Inputs
// longer than 256 bytes are cut there: the names compared are short, and
// the cost stays bounded whatever a client sends.
func Distance(a, b string) int {
	const max = 256
	if len(a) > max {
		a = a[:max]
	}
	if len(b) > max {
		b = b[:max]
	}
	// Three rows of the dynamic-programming table: i-2, i-1 and i.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			cur[j] = d
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
