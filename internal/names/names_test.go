package names

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"user-service": true, "a": true, "A.b_c-9": true, strings.Repeat("x", 128): true,
		"": false, "-a": false, ".a": false, "a/b": false, "a b": false, "é": false,
		strings.Repeat("x", 129): false, "a*": false, "a>": false,
	} {
		if got := Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzValidMatchesPattern keeps the hand-written matcher equal to docs/openapi.yaml's
// regular expression.
func FuzzValidMatchesPattern(f *testing.F) {
	for _, s := range []string{"orders", "a.b", "-x", "", "x\x00", strings.Repeat("y", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Valid(s), re.MatchString(s); got != want {
			t.Fatalf("Valid(%q) = %v, regexp says %v", s, got, want)
		}
	})
}
