// Package names holds docs/openapi.yaml's one rule for the names of services, queues
// and streams, so every component accepts and refuses the same names.
package names

import "regexp"

// Pattern is the rule of docs/openapi.yaml (schema Name): ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$.
const Pattern = `^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$`

// MaxLen is the longest name the rule allows.
const MaxLen = 128

var re = regexp.MustCompile(Pattern)

// Valid reports whether s is a valid service, queue or stream name. It is
// a hand-written matcher (equivalent to Pattern, checked by a fuzz test) so
// that hot paths do not pay for the regexp engine.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
