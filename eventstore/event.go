package eventstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of one append.
const (
	// MaxBatch is the largest number of events one append may carry. It is
	// nats-server's default limit for an atomic batch (max_batch_size).
	MaxBatch = 1000
	// MaxEventBytes bounds one event's data.
	MaxEventBytes = 1 << 20
	// MaxMetadataBytes bounds one event's metadata (it travels in a header).
	MaxMetadataBytes = 8 << 10
	// MaxIDBytes bounds ids, correlation and causation ids and sources.
	MaxIDBytes = 256
)

// Expected versions with a special meaning.
const (
	// AnyVersion appends whatever the stream's version is.
	AnyVersion int64 = -1
	// NoStream appends only when the stream has no events yet.
	NoStream int64 = 0
)

// DefaultSource is an event's source when the writer names none.
const DefaultSource = "unknown"

var (
	// groupRe names subscriber groups; they become consumer names and key
	// tokens, so no dots.
	groupRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$`)
)

// Event is what a writer appends. Only Type is required.
type Event struct {
	// Type names what happened, e.g. "user.created".
	Type string `json:"type"`
	// Data is the event's JSON body; absent means null.
	Data json.RawMessage `json:"data,omitempty"`
	// Metadata is an optional JSON object stored with the event.
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// ID is the event id; generated when empty. A writer-supplied id also
	// deduplicates a retried single-event append (JetStream's duplicate
	// window, two minutes).
	ID string `json:"id,omitempty"`
	// CorrelationID ties the events of one conversation; generated when empty.
	CorrelationID string `json:"correlationId,omitempty"`
	// CausationID is the id of the event or command that caused this one.
	CausationID string `json:"causationId,omitempty"`
	// Source names the writer; DefaultSource when empty.
	Source string `json:"source,omitempty"`

	generatedID bool
}

// Envelope is a stored event as readers see it.
type Envelope struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Stream        string          `json:"stream"`
	Version       int64           `json:"version"`
	Position      uint64          `json:"position"`
	Data          json.RawMessage `json:"data"`
	Metadata      json.RawMessage `json:"metadata"`
	Source        string          `json:"source"`
	CorrelationID string          `json:"correlationId"`
	CausationID   string          `json:"causationId"`
	Timestamp     time.Time       `json:"timestamp"`
}

// Category is the category of a stream id: the part before the first '-',
// or the whole id when it has none.
func Category(stream string) string {
	if i := strings.IndexByte(stream, '-'); i > 0 {
		return stream[:i]
	}
	return stream
}

// ValidStreamName reports whether s can name a stream:
// ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$.
func ValidStreamName(s string) bool { return validName(s, false) }

// ValidType reports whether s can name an event type:
// ^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,127}$.
func ValidType(s string) bool { return validName(s, true) }

// validName is the regular expressions above without their cost on the
// append path.
func validName(s string, colon bool) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		case i > 0 && colon && c == ':':
		default:
			return false
		}
	}
	return true
}

// ValidGroup reports whether s can name a subscriber group.
func ValidGroup(s string) bool { return groupRe.MatchString(s) }

// Validate checks one event's fields and normalizes its data and metadata.
func (e *Event) Validate() error {
	if !ValidType(e.Type) {
		return invalidf("event type %q: want 1-128 of [a-zA-Z0-9._:-] starting with a letter or digit", e.Type)
	}
	if len(bytes.TrimSpace(e.Data)) == 0 {
		e.Data = json.RawMessage("null")
	} else if len(e.Data) > MaxEventBytes {
		return invalidf("event %q: data is %d bytes, more than %d", e.Type, len(e.Data), MaxEventBytes)
	} else if !json.Valid(e.Data) || !utf8.Valid(e.Data) {
		return invalidf("event %q: data is not valid JSON (UTF-8)", e.Type)
	}
	if len(bytes.TrimSpace(e.Metadata)) > 0 && !bytes.Equal(bytes.TrimSpace(e.Metadata), []byte("null")) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, e.Metadata); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' || !utf8.Valid(buf.Bytes()) {
			return invalidf("event %q: metadata must be a JSON object", e.Type)
		}
		if buf.Len() > MaxMetadataBytes {
			return invalidf("event %q: metadata is %d bytes, more than %d", e.Type, buf.Len(), MaxMetadataBytes)
		}
		e.Metadata = buf.Bytes()
	} else {
		e.Metadata = nil
	}
	for _, f := range []struct{ name, v string }{
		{"id", e.ID}, {"correlationId", e.CorrelationID}, {"causationId", e.CausationID}, {"source", e.Source},
	} {
		if len(f.v) > MaxIDBytes {
			return invalidf("event %q: %s is longer than %d bytes", e.Type, f.name, MaxIDBytes)
		}
		if strings.ContainsAny(f.v, "\r\n\x00") {
			return invalidf("event %q: %s contains control characters", e.Type, f.name)
		}
	}
	return nil
}

// Decode unmarshals an envelope's data into v.
func (e *Envelope) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event %d (%s) of %q: %w", e.Position, e.Type, e.Stream, err)
	}
	return nil
}
