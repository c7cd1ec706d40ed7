package queue

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/plexushq/plexus/internal/httpx"
)

// The receive and ack paths carry most of the HTTP API's messages; their
// JSON is written and read here by hand, in one pass, with the same
// result as encoding/json on wireMessage and receiptsRequest
// (FuzzAppendDeliveries, FuzzDecodeReceipts).

// appendDeliveries writes {"messages":[…]} for received deliveries.
func appendDeliveries(b []byte, ds []*Delivery) []byte {
	b = append(b, `{"messages":[`...)
	for i, d := range ds {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendDelivery(b, d)
	}
	return append(b, "]}\n"...)
}

func appendDelivery(b []byte, d *Delivery) []byte {
	b = append(b, `{"id":`...)
	b = httpx.AppendString(b, d.ID)
	b = append(b, `,"payload":`...)
	b = appendPayload(b, d.Payload)
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(d.Priority), 10)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(d.Attempts), 10)
	b = append(b, `,"timestamp":"`...)
	b = d.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(d.Headers) > 0 {
		b = append(b, `,"headers":{`...)
		keys := make([]string, 0, len(d.Headers))
		for k := range d.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys) // as encoding/json orders a map
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = httpx.AppendString(b, k)
			b = append(b, ':')
			b = httpx.AppendString(b, d.Headers[k])
		}
		b = append(b, '}')
	}
	if d.Receipt != "" {
		b = append(b, `,"receipt":`...)
		b = httpx.AppendString(b, d.Receipt)
	}
	return append(b, '}')
}

// validJSON is json.Valid with a quick answer for the usual payload, a
// string without escapes or control characters (UTF-8 is not checked).
func validJSON(p []byte) bool {
	if len(p) >= 2 && p[0] == '"' && p[len(p)-1] == '"' {
		plain := true
		for _, c := range p[1 : len(p)-1] {
			if c < 0x20 || c == '"' || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			return true
		}
	}
	return json.Valid(p)
}

// appendIDs writes a publish answer: {"ids":[…]} for a batch, else
// {"id":"…"}.
func appendIDs(b []byte, ids []string, batch bool) []byte {
	if !batch {
		b = append(b, `{"id":`...)
		b = httpx.AppendString(b, ids[0])
		return append(b, "}\n"...)
	}
	b = append(b, `{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = httpx.AppendString(b, id)
	}
	return append(b, "]}\n"...)
}

// appendPayload embeds p when it is JSON text (valid UTF-8 included: a Go
// publisher may have stored any bytes), else writes it as a string.
func appendPayload(b, p []byte) []byte {
	if validJSON(p) && utf8.Valid(p) {
		return append(b, p...)
	}
	return httpx.AppendString(b, string(p))
}

// decodeReceipts reads the usual ack or extend body, {"receipts":["…",…]}
// with receipts of receipt characters, without reflection; ok is false
// for anything else, which the strict decoder then reads (and judges).
func decodeReceipts(body []byte) (receipts []string, ok bool) {
	p := jsonScan{b: body}
	if !p.lit(`{`) || !p.lit(`"receipts"`) || !p.lit(`:`) {
		return nil, false
	}
	if receipts, ok = p.receiptList(); !ok {
		return nil, false
	}
	return receipts, p.lit(`}`) && p.end()
}

// receiptList takes ["…",…] of receipts.
func (p *jsonScan) receiptList() ([]string, bool) {
	if !p.lit(`[`) {
		return nil, false
	}
	out := []string{}
	if p.lit(`]`) {
		return out, true
	}
	for {
		s, ok := p.receipt()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if p.lit(`]`) {
			return out, true
		}
		if !p.lit(`,`) {
			return nil, false
		}
	}
}

// plainString takes a string of printable ASCII without escapes.
func (p *jsonScan) plainString() (string, bool) {
	if !p.lit(`"`) {
		return "", false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return "", false
		}
	}
	return "", false
}

// smallInt takes a non-negative integer of at most 9 digits.
func (p *jsonScan) smallInt() (int, bool) {
	p.space()
	start, n := p.i, 0
	for ; p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9'; p.i++ {
		n = n*10 + int(p.b[p.i]-'0')
	}
	digits := p.i - start
	if digits == 0 || digits > 9 || (digits > 1 && p.b[start] == '0') {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	return n, true
}

// decodeReceive reads a receive body made of the usual fields (max, wait,
// visibilityTimeout, consumer, ack) with plain values, without
// reflection; ok is false for anything else (escapes, nulls, repeated or
// unknown keys), which the strict decoder then reads and judges.
func decodeReceive(body []byte) (req receiveRequest, ok bool) {
	p := jsonScan{b: body}
	if !p.lit(`{`) {
		return req, false
	}
	if p.lit(`}`) {
		return req, p.end()
	}
	seen := map[string]bool{}
	for {
		key, ok := p.plainString()
		if !ok || seen[key] || !p.lit(`:`) {
			return req, false
		}
		seen[key] = true
		switch key {
		case "max":
			if req.Max, ok = p.smallInt(); !ok {
				return req, false
			}
		case "wait", "visibilityTimeout":
			s, ok := p.plainString()
			d, err := time.ParseDuration(s)
			if !ok || err != nil {
				return req, false
			}
			if key == "wait" {
				w := httpx.Duration(d)
				req.Wait = &w
			} else {
				req.VisibilityTimeout = httpx.Duration(d)
			}
		case "consumer":
			if req.Consumer, ok = p.plainString(); !ok {
				return req, false
			}
		case "ack":
			if req.Ack, ok = p.receiptList(); !ok {
				return req, false
			}
		default:
			return req, false
		}
		if p.lit(`}`) {
			return req, p.end()
		}
		if !p.lit(`,`) {
			return req, false
		}
	}
}

// jsonScan walks a small JSON text.
type jsonScan struct {
	b []byte
	i int
}

func (p *jsonScan) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

// lit takes the literal s after optional white space.
func (p *jsonScan) lit(s string) bool {
	p.space()
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

func (p *jsonScan) end() bool {
	p.space()
	return p.i == len(p.b)
}

// receipt takes a string of base64url characters and dots (what receipts
// are made of; no escapes).
func (p *jsonScan) receipt() (string, bool) {
	if !p.lit(`"`) {
		return "", false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return "", false
		}
	}
	return "", false
}
