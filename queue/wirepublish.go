package queue

import (
	"encoding/json"
	"unicode/utf8"
)

// decodePublishFast reads the usual publish bodies, {"payload":V} and
// {"messages":[{"payload":V},…]} whose items may also carry a plain "id"
// and a small non-negative "priority", in one pass without reflection;
// the payloads alias body. ok is false for anything else (other fields,
// escapes in keys or ids, repeated keys, an empty list), which the strict
// decoder then reads and judges (FuzzDecodePublish).
func decodePublishFast(body []byte) (items []publishItem, batch, ok bool) {
	if !utf8.Valid(body) {
		return nil, false, false
	}
	p := jsonScan{b: body}
	if !p.lit(`{`) {
		return nil, false, false
	}
	save := p.i
	if p.lit(`"messages"`) {
		if !p.lit(`:`) || !p.lit(`[`) {
			return nil, false, false
		}
		for {
			it, ok := p.publishItem()
			if !ok || len(items) == maxBatch {
				return nil, false, false
			}
			items = append(items, it)
			if p.lit(`]`) {
				break
			}
			if !p.lit(`,`) {
				return nil, false, false
			}
		}
		return items, true, p.lit(`}`) && p.end()
	}
	p.i = save - 1
	it, ok := p.publishItem()
	if !ok || !p.end() {
		return nil, false, false
	}
	return []publishItem{it}, false, true
}

// publishItem takes {"payload":V[,"id":"…"][,"priority":n]} in any order.
func (p *jsonScan) publishItem() (it publishItem, ok bool) {
	if !p.lit(`{`) {
		return it, false
	}
	var seen [3]bool
	for {
		key, ok := p.plainString()
		if !ok || !p.lit(`:`) {
			return it, false
		}
		k := 0
		switch key {
		case "payload":
			it.Payload, ok = p.value()
		case "id":
			k = 1
			it.ID, ok = p.plainString()
		case "priority":
			k = 2
			it.Priority, ok = p.smallInt()
		default:
			return it, false
		}
		if !ok || seen[k] {
			return it, false
		}
		seen[k] = true
		if p.lit(`}`) {
			return it, seen[0]
		}
		if !p.lit(`,`) {
			return it, false
		}
	}
}

// value takes one JSON value (checked with json.Valid) and returns its
// bytes as encoding/json gives them to a json.RawMessage.
func (p *jsonScan) value() (json.RawMessage, bool) {
	p.space()
	start, depth := p.i, 0
	for p.i < len(p.b) {
		switch c := p.b[p.i]; c {
		case '"':
			if !p.skipString() {
				return nil, false
			}
			if depth == 0 {
				return p.valid(start)
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return p.valid(start) // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				p.i++
				return p.valid(start)
			}
		case ',', ' ', '\t', '\n', '\r', ':':
			if depth == 0 {
				return p.valid(start)
			}
		}
		p.i++
	}
	return nil, false
}

func (p *jsonScan) valid(start int) (json.RawMessage, bool) {
	v := p.b[start:p.i]
	if len(v) == 0 || !validJSON(v) { // the body is valid UTF-8 already
		return nil, false
	}
	return v, true
}

// skipString moves past the string that starts at p.i.
func (p *jsonScan) skipString() bool {
	for p.i++; p.i < len(p.b); p.i++ {
		switch p.b[p.i] {
		case '\\':
			p.i++
		case '"':
			p.i++
			return true
		}
	}
	return false
}
