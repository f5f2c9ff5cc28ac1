package event

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"testing"
)

func TestXCheck(t *testing.T) {
	in, err := os.Open("/tmp/xcheck/in.txt")
	if err != nil {
		t.Skip()
	}
	out, _ := os.Create("/tmp/xcheck/out.txt")
	w := bufio.NewWriter(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		b, _ := base64.StdEncoding.DecodeString(sc.Text())
		c, err := Canonicalize(b)
		if err != nil {
			fmt.Fprintf(w, "ERR %v\n", err)
		} else {
			fmt.Fprintf(w, "OK %s\n", base64.StdEncoding.EncodeToString(c))
		}
	}
	w.Flush()
	out.Close()
}
