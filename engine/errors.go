package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The engine's temporary failures. Classify wraps the errors of engine
// calls with one of them, so that callers (and the one HTTP mapping in
// internal/httpx) match them with errors.Is and never by text.
var (
	// ErrUnavailable means the engine could not serve a call now: the
	// connection is down, JetStream or a stream has no leader, or the call
	// ran out of time. The call may or may not have taken effect when it
	// was a write that timed out; retrying with the same message id or the
	// same expected version is safe.
	ErrUnavailable = errors.New("engine unavailable")
	// ErrStorageFull means the engine refuses writes because its storage is
	// full: the data dir's file system is below the reserve, or JetStream's
	// storage limits are reached. Nothing was stored; retry once space is
	// freed.
	ErrStorageFull = errors.New("engine storage full")
	// ErrDataDirInUse means another process holds the data dir's lock.
	ErrDataDirInUse = errors.New("data dir in use")
)

// storageFullCodes are the JetStream API errors that mean "no room".
var storageFullCodes = map[jetstream.ErrorCode]bool{
	jetstream.ErrorCode(nats.JSErrCodeInsufficientResourcesErr): true,
	jetstream.ErrorCode(server.JSStorageResourcesExceededErr):   true,
	jetstream.ErrorCode(server.JSMemoryResourcesExceededErr):    true,
	jetstream.ErrorCode(server.JSAccountResourcesExceededErr):   true,
}

// unavailableCodes are the JetStream API errors of an engine that cannot
// serve now (besides every other error the server answers with 503).
var unavailableCodes = map[jetstream.ErrorCode]bool{
	jetstream.ErrorCode(nats.JSErrCodeJetStreamNotAvailable): true,
	jetstream.JSErrCodeJetStreamNotEnabled:                   true,
	jetstream.JSErrCodeJetStreamNotEnabledForAccount:         true,
	jetstream.ErrorCode(server.JSClusterNotLeaderErr):        true,
	jetstream.ErrorCode(server.JSClusterNotActiveErr):        true,
	jetstream.ErrorCode(server.JSStreamOfflineErr):           true,
	jetstream.ErrorCode(server.JSStreamOfflineReasonErrF):    true,
	jetstream.ErrorCode(server.JSConsumerOfflineErr):         true,
	jetstream.ErrorCode(server.JSConsumerOfflineReasonErrF):  true,
	// A publish whose message id the stream is still storing (a retry
	// overtook the first try during a failover): ask again shortly, the
	// first try's outcome decides.
	jetstream.ErrorCode(server.JSStreamDuplicateMessageConflict): true,
}

// unavailableErrs are the client-side errors of a call the engine did not
// answer.
var unavailableErrs = []error{
	nats.ErrTimeout, context.DeadlineExceeded, nats.ErrNoResponders,
	nats.ErrConnectionClosed, nats.ErrConnectionDraining, nats.ErrDisconnected,
	nats.ErrNoServers, nats.ErrStaleConnection,
	jetstream.ErrNoStreamResponse, jetstream.ErrServerShutdown, jetstream.ErrNoHeartbeat,
	jetstream.ErrJetStreamNotEnabled, jetstream.ErrJetStreamNotEnabledForAccount,
	nats.ErrJetStreamNotEnabled, nats.ErrJetStreamNotEnabledForAccount,
}

// Classify returns err wrapped with ErrStorageFull or ErrUnavailable when
// it is one of the engine's temporary failures, and err unchanged
// otherwise (domain answers such as "not found" or "wrong last sequence"
// stay as they are). The result still matches err (errors.Is).
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrStorageFull) || errors.Is(err, ErrTooLarge) {
		return err
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	if code, status, ok := apiError(err); ok {
		switch {
		case code == jetstream.ErrorCode(server.JSStreamMessageExceedsMaximumErr):
			return fmt.Errorf("%w: %w", ErrTooLarge, err)
		case storageFullCodes[code]:
			return fmt.Errorf("%w: %w", ErrStorageFull, err)
		case unavailableCodes[code] || status == 503:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	for _, u := range unavailableErrs {
		if errors.Is(err, u) {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return err
}

// apiError finds a JetStream API error (either client package's) in err.
func apiError(err error) (code jetstream.ErrorCode, status int, ok bool) {
	var je jetstream.JetStreamError
	if errors.As(err, &je) {
		if ae := je.APIError(); ae != nil {
			return ae.ErrorCode, ae.Code, true
		}
	}
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode, ae.Code, true
	}
	var le *nats.APIError
	if errors.As(err, &le) {
		return jetstream.ErrorCode(le.ErrorCode), le.Code, true
	}
	return 0, 0, false
}
