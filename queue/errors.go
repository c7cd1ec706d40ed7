package queue

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/plexushq/plexus/internal/httpx"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrQueueNotFound: the queue does not exist.
	ErrQueueNotFound = errors.New("queue not found")
	// ErrQueueFull: the queue is at maxSize and its overflow policy is reject.
	ErrQueueFull = errors.New("queue full")
	// ErrInvalidName: the queue name is not ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$.
	ErrInvalidName = errors.New("invalid queue name")
	// ErrInvalidMessage: a message has an invalid priority, delay, id or header.
	ErrInvalidMessage = errors.New("invalid message")
	// ErrInvalidReceipt: a receipt is malformed, forged or for another queue.
	ErrInvalidReceipt = errors.New("invalid receipt")
	// ErrReceiptExpired: the receipt's visibility timeout ended (the
	// message may be with another receiver now); receive it again.
	ErrReceiptExpired = errors.New("receipt expired")
	// ErrReceiptStale: the receipt belongs to an older delivery of the
	// message: it was nacked (or acked) with it already, or delivered
	// again since. Nothing was changed.
	ErrReceiptStale = errors.New("receipt stale")
	// ErrInvalidConfig: a queue option is out of range (a *ConfigError
	// names it).
	ErrInvalidConfig = errors.New("invalid queue option")
	// ErrTooManyQueues: creating the queue would pass Options.MaxQueues.
	ErrTooManyQueues = errors.New("too many queues")
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("queue broker closed")
	// ErrBusy: this node's receivers hold as many messages as it keeps
	// track of; settle (ack, nack) some, or receive through another node.
	ErrBusy = errors.New("busy")
)

// ConfigError is an invalid queue option.
type ConfigError struct {
	Field, Msg string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Msg }

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// NotFoundError names the queue that does not exist; it matches ErrQueueNotFound.
type NotFoundError struct{ Queue string }

func (e *NotFoundError) Error() string { return "Queue not found: " + e.Queue }

// Is makes errors.Is(err, ErrQueueNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrQueueNotFound }

func notFound(q string) error { return &NotFoundError{Queue: q} }

func invalidMsg(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, a...))
}

// apiProblem maps the queue's own errors to HTTP problems; it is the domain
// half of the API's httpx.Errors (engine failures and the rest are mapped
// there). Nil for errors it does not know.
func apiProblem(err error) *httpx.Problem {
	var nf *NotFoundError
	var ce *ConfigError
	switch {
	case errors.As(err, &nf):
		return httpx.NewProblem(http.StatusNotFound, "queue-not-found", nf.Error()).With("queue", nf.Queue)
	case errors.As(err, &ce):
		return httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-queue-config", err.Error())
	case errors.Is(err, ErrQueueFull):
		return httpx.NewProblem(http.StatusInsufficientStorage, "queue-full", err.Error())
	case errors.Is(err, ErrTooManyQueues):
		return httpx.NewProblem(http.StatusConflict, "too-many-queues", err.Error())
	case errors.Is(err, ErrInvalidName):
		return httpx.NewProblem(http.StatusBadRequest, "invalid-name", err.Error())
	case errors.Is(err, ErrInvalidMessage):
		return httpx.NewProblem(http.StatusUnprocessableEntity, "invalid-message", err.Error())
	case errors.Is(err, ErrReceiptExpired):
		return httpx.NewProblem(http.StatusConflict, "receipt-expired", err.Error())
	case errors.Is(err, ErrReceiptStale):
		return httpx.NewProblem(http.StatusConflict, "receipt-stale", err.Error())
	case errors.Is(err, ErrInvalidReceipt):
		return httpx.NewProblem(http.StatusBadRequest, "invalid-receipt", err.Error())
	case errors.Is(err, ErrBusy):
		return httpx.NewProblem(http.StatusServiceUnavailable, "busy", err.Error()).Retry(httpx.RetryBusy)
	}
	return nil
}
