package eventstore

import (
	"errors"
	"fmt"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalid marks bad input: nothing was stored.
	ErrInvalid = errors.New("invalid")
	// ErrStreamNotFound is returned for a stream without events.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrNotFound is returned for an unknown snapshot, group or parked event.
	ErrNotFound = errors.New("not found")
	// ErrRejected is returned when a publish middleware rejects an event.
	ErrRejected = errors.New("rejected")
	// ErrConflict matches every *ConflictError.
	ErrConflict = errors.New("version conflict")
	// ErrStopped is returned by calls on a stopped store or subscription.
	ErrStopped = errors.New("stopped")
	// ErrBusy means the engine kept refusing an append as "in process"
	// (a clustered stream leader still settling the subject's previous
	// append) through the store's short retries, or a node answered 503
	// "busy"; nothing was stored; retry shortly.
	ErrBusy = errors.New("busy")
)

// ConflictError reports an append whose expected version did not match.
type ConflictError struct {
	Stream   string
	Expected int64
	// Current is the stream's version when the append was refused.
	Current int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("stream %q: expected version %d, current version %d", e.Stream, e.Expected, e.Current)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func rejectedf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRejected, fmt.Sprintf(format, a...))
}
