package eventstore

import "context"

type causeKey struct{}

type cause struct{ correlationID, eventID string }

// withEventIDs marks ctx as handling env: events appended with it are
// correlated with env and caused by it, unless they say otherwise.
func withEventIDs(ctx context.Context, env Envelope) context.Context {
	return context.WithValue(ctx, causeKey{}, cause{env.CorrelationID, env.ID})
}

// CausedBy returns ctx marked so that events appended with it carry
// correlationID and causationID (when they name none).
func CausedBy(ctx context.Context, correlationID, causationID string) context.Context {
	return context.WithValue(ctx, causeKey{}, cause{correlationID, causationID})
}

// EventIDs returns the correlation id and the id of the event a handler's
// ctx is handling; empty outside a handler.
func EventIDs(ctx context.Context) (correlationID, eventID string) {
	c, _ := ctx.Value(causeKey{}).(cause)
	return c.correlationID, c.eventID
}
