package httpx

import (
	"encoding/json"
	"unicode/utf8"
)

// AppendString writes s as a JSON string, as encoding/json does (HTML
// characters escaped, invalid UTF-8 replaced). Names, ids and receipts
// need no escaping and are copied as they are; anything else goes
// through encoding/json. For answers written by hand in one pass.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
