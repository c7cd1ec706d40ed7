package engine_test

import (
	"strconv"
	"testing"

	"github.com/plexushq/plexus/engine"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "64MiB": 64 << 20, "64 MiB": 64 << 20, "1GB": 1e9, "512KiB": 512 << 10,
		"-1": -1, "10B": 10,
	} {
		if got, err := engine.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5GB", "lots", "9223372036854775807KiB", "1 2"} {
		if got, err := engine.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

// FuzzParseSize: an accepted size is the number times its unit, without
// overflow; plain numbers read back exactly.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64MiB", "1GB", "-1", "0", "9223372036854775807", "1TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := engine.ParseSize(s)
		if err != nil {
			return
		}
		if plain, perr := strconv.ParseInt(s, 10, 64); perr == nil && plain != n {
			t.Fatalf("%q: %d, want %d", s, n, plain)
		}
	})
}
