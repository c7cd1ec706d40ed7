package eventstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/plexushq/plexus/engine"
	"github.com/plexushq/plexus/internal/adminclient"
	"github.com/plexushq/plexus/internal/httpx"
	"github.com/plexushq/plexus/problem"
	"github.com/plexushq/plexus/retry"
	"github.com/plexushq/plexus/telemetry"
)

// Client talks to a Plexus node's Events API over HTTP, for programs that
// run outside the node. Its errors match the store's: *ConflictError,
// ErrStreamNotFound, ErrNotFound, ErrInvalid.
type Client struct {
	conn    adminclient.Conn
	retries retry.Policy
}

// NewClient returns a client of the admin API at baseURL (e.g.
// "http://127.0.0.1:3100") with the admin token. hc nil means a client
// with no overall timeout (Tail streams); bound calls with ctx.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	return &Client{conn: adminclient.Conn{Base: strings.TrimRight(baseURL, "/"), Token: token, HTTP: hc,
		Inject: telemetry.InjectHTTP}}
}

// SetAttempts sets how many times Append tries in all (default 8; 1 turns
// retries off).
func (c *Client) SetAttempts(n int) { c.retries.Attempts = n }

// Append appends events to stream with an expected version (AnyVersion,
// NoStream or N).
//
// It retries by itself when the node answers 503 with a retry hint (the
// engine fails over, has no leader, is busy) or the request fails on the
// way, waiting the hint: events without an id get one first, and before
// each retry the stream is read to see whether the previous attempt was
// stored after all (its answer lost). So an append with an expected
// version is stored once, whatever happens on the way; one with
// AnyVersion is deduplicated by its event ids (single events within the
// engine's two-minute window, batches only while they are the stream's
// last events).
func (c *Client) Append(ctx context.Context, stream string, expected int64, events ...Event) (AppendResult, error) {
	events = withIDs(events)
	var res AppendResult
	err := retry.Do(ctx, c.retries, func(ctx context.Context, n int) error {
		if n > 0 {
			r, ok, err := c.landed(ctx, stream, expected, events)
			if err != nil || ok {
				res = r
				return err
			}
		}
		return c.do(ctx, http.MethodPost, "/v1/streams/"+url.PathEscape(stream)+"/events",
			AppendRequest{ExpectedVersion: &expected, Events: events}, &res)
	})
	return res, err
}

// withIDs is a copy of events in which every event has an id.
func withIDs(events []Event) []Event {
	out := make([]Event, len(events))
	copy(out, events)
	for i := range out {
		if out[i].ID == "" {
			out[i].ID = nuid.Next()
		}
	}
	return out
}

// landed reports whether events are stored already (an earlier attempt
// whose answer was lost): at versions expected+1… for an expected
// version, as the stream's last events for AnyVersion.
func (c *Client) landed(ctx context.Context, stream string, expected int64, events []Event) (AppendResult, bool, error) {
	var got []Envelope
	var err error
	if expected >= 0 {
		got, err = c.ReadStream(ctx, stream, expected+1, len(events))
	} else {
		got, err = c.ReadStreamBackward(ctx, stream, 0, len(events))
		slices.Reverse(got)
	}
	if errors.Is(err, ErrStreamNotFound) {
		return AppendResult{}, false, nil
	}
	if err != nil || len(got) != len(events) {
		return AppendResult{}, false, err
	}
	for i := range events {
		if got[i].ID != events[i].ID {
			return AppendResult{}, false, nil
		}
	}
	last := got[len(got)-1]
	return AppendResult{Version: last.Version, Position: last.Position}, true, nil
}

// ReadStream reads a stream forwards from a version.
func (c *Client) ReadStream(ctx context.Context, stream string, fromVersion int64, limit int) ([]Envelope, error) {
	return c.readStream(ctx, stream, fromVersion, limit, "forward")
}

// ReadStreamBackward reads a stream backwards from a version (0: newest).
func (c *Client) ReadStreamBackward(ctx context.Context, stream string, fromVersion int64, limit int) ([]Envelope, error) {
	return c.readStream(ctx, stream, fromVersion, limit, "backward")
}

func (c *Client) readStream(ctx context.Context, stream string, from int64, limit int, dir string) ([]Envelope, error) {
	q := url.Values{"fromVersion": {strconv.FormatInt(from, 10)}, "direction": {dir}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Events []Envelope `json:"events"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/streams/"+url.PathEscape(stream)+"/events?"+q.Encode(), nil, &out)
	return out.Events, err
}

// ReadAll reads a page of events in global order.
func (c *Client) ReadAll(ctx context.Context, q Query) (Page, error) {
	var p Page
	err := c.do(ctx, http.MethodGet, "/v1/events?"+queryValues(q).Encode(), nil, &p)
	return p, err
}

// Scan reads every event matching q (Limit is ignored) from q.FromPosition
// up to the last event stored when it starts, streamed in one answer
// (NDJSON) instead of pages; fn gets them in global order. A broken
// stream is resumed after the last event fn got. fn's error ends it and is
// returned.
func (c *Client) Scan(ctx context.Context, q Query, fn func(Envelope) error) error {
	q.Limit, q.OnlyNew, q.Backward = 0, false, false
	for fails := 0; ; {
		n, err := c.scanOnce(ctx, q, func(e Envelope) error {
			q.FromPosition, q.Since = e.Position+1, time.Time{}
			return fn(e)
		})
		var ferr fnError
		var p *problem.Problem
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ferr):
			return ferr.err
		case errors.As(err, &p), ctx.Err() != nil:
			return err
		}
		if n > 0 {
			fails = 0
		}
		if fails++; fails > 3 {
			return err
		}
	}
}

func (c *Client) scanOnce(ctx context.Context, q Query, fn func(Envelope) error) (int, error) {
	path := "/v1/events?" + queryValues(q).Encode()
	resp, err := c.conn.Send(ctx, http.MethodGet, path, nil, http.Header{"Accept": {httpx.NDJSONType}})
	if err != nil {
		return 0, storeError(err, http.MethodGet, path)
	}
	defer resp.Body.Close()
	n := 0
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return n, nil
		}
		if err != nil { // a line cut short: the stream broke
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("eventstore: scan: %w", err)
		}
		var e Envelope
		if err := e.UnmarshalJSON(bytes.TrimRight(line, "\r\n")); err != nil { // one pass, not encoding/json's two
			return n, fmt.Errorf("eventstore: scan: %w", err)
		}
		n++
		if err := fn(e); err != nil {
			return n, fnError{err}
		}
	}
}

// SaveSnapshot stores a stream's snapshot.
func (c *Client) SaveSnapshot(ctx context.Context, stream string, snap Snapshot) error {
	return c.do(ctx, http.MethodPut, "/v1/streams/"+url.PathEscape(stream)+"/snapshot",
		snapshotBody{Version: snap.Version, Position: snap.Position, State: snap.State}, nil)
}

// LoadSnapshot reads a stream's snapshot.
func (c *Client) LoadSnapshot(ctx context.Context, stream string) (Snapshot, error) {
	var s Snapshot
	err := c.do(ctx, http.MethodGet, "/v1/streams/"+url.PathEscape(stream)+"/snapshot", nil, &s)
	return s, err
}

// Tail follows GET /v1/events/subscribe: fn gets every matching event from
// q.FromPosition on, then live ones; a dropped connection is resumed after
// the last event seen (Last-Event-ID). It returns nil when ctx ends, or
// fn's error.
func (c *Client) Tail(ctx context.Context, q Query, fn func(Envelope) error) error {
	var last uint64
	delay := 250 * time.Millisecond
	for {
		n, err := c.tailOnce(ctx, q, last, func(e Envelope) error { last = e.Position; return fn(e) })
		if ctx.Err() != nil {
			return nil
		}
		var ferr fnError
		if errors.As(err, &ferr) {
			return ferr.err
		}
		var p *problem.Problem
		if errors.As(err, &p) && p.Status < 500 {
			return err
		}
		if n > 0 {
			delay = 250 * time.Millisecond
		}
		if p != nil && p.RetryAfter > 0 { // a busy or recovering node says when
			delay = max(delay, time.Duration(p.RetryAfter)*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// fnError carries the caller's fn error out of a consuming loop.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func (c *Client) tailOnce(ctx context.Context, q Query, last uint64, fn func(Envelope) error) (int, error) {
	hdr := http.Header{"Accept": {"text/event-stream"}}
	if last > 0 {
		hdr.Set("Last-Event-ID", strconv.FormatUint(last, 10))
	}
	path := "/v1/events/subscribe?" + queryValues(q).Encode()
	resp, err := c.conn.Send(ctx, http.MethodGet, path, nil, hdr)
	if err != nil {
		return 0, storeError(err, http.MethodGet, path)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e Envelope
		if err := e.UnmarshalJSON([]byte(data)); err != nil {
			return n, err
		}
		n++
		if err := fn(e); err != nil {
			return n, fnError{err}
		}
	}
	return n, sc.Err()
}

func queryValues(q Query) url.Values {
	v := url.Values{}
	if q.OnlyNew {
		v.Set("fromPosition", "end")
	} else if q.FromPosition > 0 {
		v.Set("fromPosition", strconv.FormatUint(q.FromPosition, 10))
	}
	if len(q.Types) > 0 {
		v.Set("types", strings.Join(q.Types, ","))
	}
	if q.Category != "" {
		v.Set("category", q.Category)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Backward {
		v.Set("direction", "backward")
	}
	return v
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	_, err := c.conn.Do(ctx, method, path, in, out)
	return storeError(err, method, path)
}

// storeError turns an error answer into the store's error values and
// names the call in a transport error.
func storeError(err error, method, path string) error {
	var p *problem.Problem
	if err == nil || !errors.As(err, &p) {
		if err != nil {
			err = fmt.Errorf("eventstore: %s %s: %w", method, path, err)
		}
		return err
	}
	if p.Status == http.StatusConflict {
		cur, _ := p.Extra["currentVersion"].(float64)
		exp, _ := p.Extra["expectedVersion"].(float64)
		return &ConflictError{Expected: int64(exp), Current: int64(cur), Stream: streamOf(path)}
	}
	var kind error
	switch {
	case p.Slug() == "stream-not-found":
		kind = ErrStreamNotFound
	case p.Status == http.StatusNotFound:
		kind = ErrNotFound
	case p.Status == http.StatusBadRequest || p.Status == http.StatusUnprocessableEntity || p.Status == http.StatusRequestEntityTooLarge:
		kind = ErrInvalid
	case p.Slug() == "busy":
		kind = ErrBusy
	case p.Status == http.StatusServiceUnavailable:
		kind = engine.ErrUnavailable
	case p.Status == http.StatusInsufficientStorage:
		kind = engine.ErrStorageFull
	}
	if kind == nil {
		return p
	}
	return &adminclient.Error{Kind: kind, Problem: p}
}

func streamOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	if len(parts) > 3 && parts[2] == "streams" {
		return parts[3]
	}
	return ""
}

// Groups lists the subscriber groups and their checkpoints.
func (c *Client) Groups(ctx context.Context) ([]GroupInfo, error) {
	var out struct {
		Groups []GroupInfo `json:"groups"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/subscriptions", nil, &out)
	return out.Groups, err
}

// Parked lists a group's parked events.
func (c *Client) Parked(ctx context.Context, group string) ([]ParkedEvent, error) {
	var out struct {
		Events []ParkedEvent `json:"events"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/subscriptions/"+url.PathEscape(group)+"/parked", nil, &out)
	return out.Events, err
}

// RetryParked asks the group's running subscription to handle a parked
// event again.
func (c *Client) RetryParked(ctx context.Context, group string, position uint64) error {
	return c.do(ctx, http.MethodPost, fmt.Sprintf("/v1/subscriptions/%s/parked/%d/retry", url.PathEscape(group), position), nil, nil)
}

// SkipParked drops a parked event for good.
func (c *Client) SkipParked(ctx context.Context, group string, position uint64) error {
	return c.do(ctx, http.MethodDelete, fmt.Sprintf("/v1/subscriptions/%s/parked/%d", url.PathEscape(group), position), nil, nil)
}
