package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/plexushq/plexus/internal/httpx"
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
	MaxSize           int            `json:"maxSize"`
	Overflow          string         `json:"overflow"`
	RetryAttempts     int            `json:"retryAttempts"`
	RetryDelay        httpx.Duration `json:"retryDelay"`
	RetryBackoff      string         `json:"retryBackoff"`
	TTL               httpx.Duration `json:"ttl"`
	DeadLetterQueue   string         `json:"deadLetterQueue"`
	VisibilityTimeout httpx.Duration `json:"visibilityTimeout"`
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
func DecodePublish(body []byte) ([]Message, bool, *httpx.Problem) {
	var req publishRequest
	if p := httpx.DecodeJSONBytes(body, &req); p != nil {
		return nil, false, p
	}
	bad := func(format string, a ...any) ([]Message, bool, *httpx.Problem) {
		return nil, false, httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-message", fmt.Sprintf(format, a...))
	}
	batch := req.Messages != nil
	if batch {
		if req.Payload != nil || req.ID != "" || req.Priority != 0 || req.Delay != 0 || req.Headers != nil {
			return bad("give either one message or \"messages\", not both")
		}
		if len(req.Messages) == 0 || len(req.Messages) > maxBatch {
			return bad("%d messages: want 1 to %d", len(req.Messages), maxBatch)
		}
	} else {
		req.Messages = []publishItem{req.publishItem}
	}
	out := make([]Message, len(req.Messages))
	for i, it := range req.Messages {
		if len(it.Payload) == 0 {
			return bad("message %d: payload is required", i)
		}
		out[i] = Message{ID: it.ID, Payload: it.Payload, Priority: it.Priority, Delay: it.Delay.D(), Headers: it.Headers}
		if err := out[i].Validate(); err != nil {
			return bad("message %d: %v", i, err)
		}
	}
	return out, batch, nil
}

type receiveRequest struct {
	Max               int             `json:"max"`
	Wait              *httpx.Duration `json:"wait"`
	VisibilityTimeout httpx.Duration  `json:"visibilityTimeout"`
	Consumer          string          `json:"consumer"`
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

func wirePayload(b []byte) json.RawMessage {
	if json.Valid(b) {
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

// readBody reads a JSON request body (415 wrong type, 413 too large).
func readBody(w http.ResponseWriter, r *http.Request, maxBytes int64) ([]byte, *httpx.Problem) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			return nil, httpx.NewProblem(http.StatusUnsupportedMediaType, "unsupported-media-type",
				fmt.Sprintf("content type %q is not application/json", ct))
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, httpx.NewProblem(http.StatusRequestEntityTooLarge, "body-too-large",
				fmt.Sprintf("request body is larger than %d bytes", maxBytes))
		}
		return nil, httpx.NewProblem(http.StatusBadRequest, "bad-body", "reading request body: "+err.Error())
	}
	return b, nil
}

// decodeOptional decodes a JSON body into dst strictly; an empty body
// leaves dst as it is (all defaults).
func decodeOptional(w http.ResponseWriter, r *http.Request, dst any) *httpx.Problem {
	b, p := readBody(w, r, httpx.DefaultMaxBody)
	if p != nil {
		return p
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return httpx.DecodeJSONBytes(b, dst)
}
