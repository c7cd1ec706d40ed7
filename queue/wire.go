package queue

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/problem"
)

const (
	maxPublishBody = 8 << 20
	maxBatch       = 1000
	maxReceive     = 100
	maxWait        = 60 * time.Second
	defaultWait    = 20 * time.Second
)

// configRequest is the body of PUT /v1/queues/{queue}.
type configRequest struct {
	MaxSize           int             `json:"maxSize"`
	Overflow          string          `json:"overflow"`
	RetryAttempts     int             `json:"retryAttempts"`
	RetryDelay        *httpx.Duration `json:"retryDelay"` // given as 0: retry at once
	RetryBackoff      string          `json:"retryBackoff"`
	TTL               httpx.Duration  `json:"ttl"`
	DeadLetterQueue   string          `json:"deadLetterQueue"`
	VisibilityTimeout httpx.Duration  `json:"visibilityTimeout"`
}

// config is the Config the request asks for; an explicit "retryDelay":
// "0s" retries at once (left out, it is the default).
func (r *configRequest) config() Config {
	cfg := Config{MaxSize: r.MaxSize, Overflow: r.Overflow, RetryAttempts: r.RetryAttempts,
		RetryBackoff: r.RetryBackoff, TTL: r.TTL.D(), DeadLetterQueue: r.DeadLetterQueue,
		VisibilityTimeout: r.VisibilityTimeout.D()}
	if r.RetryDelay != nil {
		d := r.RetryDelay.D()
		cfg.RetryDelay = &d
	}
	return cfg
}

// publishItem is one message of POST /v1/queues/{queue}/messages.
type publishItem struct {
	Payload  json.RawMessage   `json:"payload"`
	Priority int               `json:"priority"`
	Delay    httpx.Duration    `json:"delay"`
	ID       string            `json:"id"`
	Headers  map[string]string `json:"headers"`
}

type publishRequest struct {
	publishItem
	Messages []publishItem `json:"messages"`
}

// DecodePublish strictly decodes a publish body: one message or
// {"messages":[…]}. Errors are problems (400 syntax, 422 values).
// The usual bodies are read in one pass (decodePublishFast), the rest by
// encoding/json; payloads may share body's bytes.
func DecodePublish(body []byte) ([]Message, bool, *problem.Problem) {
	items, batch, ok := decodePublishFast(body)
	if !ok {
		var p *problem.Problem
		if items, batch, p = decodePublishStrict(body); p != nil {
			return nil, false, p
		}
	}
	out := make([]Message, len(items))
	for i, it := range items {
		if len(it.Payload) == 0 {
			return nil, false, invalidMessage("message %d: payload is required", i)
		}
		out[i] = Message{ID: it.ID, Payload: it.Payload, Priority: it.Priority, Delay: it.Delay.D(), Headers: it.Headers}
		if err := out[i].Validate(); err != nil {
			return nil, false, invalidMessage("message %d: %v", i, err)
		}
	}
	return out, batch, nil
}

// decodePublishStrict reads a publish body with encoding/json.
func decodePublishStrict(body []byte) ([]publishItem, bool, *problem.Problem) {
	var req publishRequest
	if p := httpx.DecodeJSONBytes(body, &req); p != nil {
		return nil, false, p
	}
	batch := req.Messages != nil
	if !batch {
		return []publishItem{req.publishItem}, false, nil
	}
	if req.Payload != nil || req.ID != "" || req.Priority != 0 || req.Delay != 0 || req.Headers != nil {
		return nil, false, invalidMessage("give either one message or \"messages\", not both")
	}
	if len(req.Messages) == 0 || len(req.Messages) > maxBatch {
		return nil, false, invalidMessage("%d messages: want 1 to %d", len(req.Messages), maxBatch)
	}
	return req.Messages, true, nil
}

func invalidMessage(format string, a ...any) *problem.Problem {
	return httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-message", fmt.Sprintf(format, a...))
}

type receiveRequest struct {
	Max               int             `json:"max"`
	Wait              *httpx.Duration `json:"wait"`
	VisibilityTimeout httpx.Duration  `json:"visibilityTimeout"`
	Consumer          string          `json:"consumer"`
	// Ack acknowledges these receipts (of the previous receive) before
	// receiving, in the same round trip.
	Ack []string `json:"ack"`
}

type receiptsRequest struct {
	Receipts []string `json:"receipts"`
}

type nackRequest struct {
	Receipt string         `json:"receipt"`
	Error   string         `json:"error"`
	Delay   httpx.Duration `json:"delay"`
}

type redriveRequest struct {
	IDs []string `json:"ids"`
}

// wireMessage is a delivery or dead letter as JSON: the payload is
// embedded as JSON when it is JSON, else as a string.
type wireMessage struct {
	ID                  string            `json:"id"`
	Payload             json.RawMessage   `json:"payload"`
	Priority            int               `json:"priority"`
	Attempts            int               `json:"attempts"`
	Timestamp           *time.Time        `json:"timestamp,omitempty"`
	Headers             map[string]string `json:"headers,omitempty"`
	Receipt             string            `json:"receipt,omitempty"`
	OriginalQueue       string            `json:"originalQueue,omitempty"`
	DeadLetterReason    string            `json:"deadLetterReason,omitempty"`
	DeadLetterTimestamp *time.Time        `json:"deadLetterTimestamp,omitempty"`
	LastError           string            `json:"lastError,omitempty"`
}

// wirePayload embeds b when it is JSON text (valid UTF-8 included: a Go
// publisher may have stored any bytes), else sends it as a string.
func wirePayload(b []byte) json.RawMessage {
	if json.Valid(b) && utf8.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

func fromDelivery(d *Delivery) wireMessage {
	ts := d.Timestamp
	return wireMessage{ID: d.ID, Payload: wirePayload(d.Payload), Priority: d.Priority, Attempts: d.Attempts,
		Timestamp: &ts, Headers: d.Headers, Receipt: d.Receipt}
}

func fromDeadLetter(d DeadLetter) wireMessage {
	ts := d.Timestamp
	return wireMessage{ID: d.ID, Payload: wirePayload(d.Payload), Priority: d.Priority, Attempts: d.Attempts,
		Headers: d.Headers, OriginalQueue: d.OriginalQueue, DeadLetterReason: d.Reason,
		DeadLetterTimestamp: &ts, LastError: d.LastError}
}

func queryLimit(r *http.Request, def, max int) (int, *httpx.Problem) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, httpx.NewProblem(http.StatusBadRequest, "bad-query", fmt.Sprintf("limit %q: want 1 to %d", s, max))
	}
	return n, nil
}
