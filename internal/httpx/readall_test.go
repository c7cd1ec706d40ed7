package httpx

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads what io.ReadAll reads whatever length was announced
// (exact, short, long, none), through readers that return one byte at a
// time or data with io.EOF, and passes a read error on.
func TestReadAllAsIOReadAll(t *testing.T) {
	for _, n := range []int{0, 1, 7, 512, 4096, 70000} {
		body := bytes.Repeat([]byte("0123456789"), n/10+1)[:n]
		for _, size := range []int64{-1, 0, 1, int64(n) - 1, int64(n), int64(n) + 1, 2 * int64(n)} {
			for name, r := range map[string]io.Reader{
				"plain":   bytes.NewReader(body),
				"onebyte": iotest.OneByteReader(bytes.NewReader(body)),
				"dataeof": iotest.DataErrReader(bytes.NewReader(body)),
			} {
				got, err := readAll(r, size)
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("%d bytes announced as %d (%s): got %d bytes, %v", n, size, name, len(got), err)
				}
			}
		}
	}
	boom := errors.New("boom")
	got, err := readAll(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), 10)
	if !errors.Is(err, boom) || string(got) != "abc" {
		t.Fatalf("got %q, %v; want abc and the read error", got, err)
	}
}
