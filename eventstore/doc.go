// Package eventstore owns Plexus's event store and event bus: streams of
// events appended atomically with optimistic concurrency, read by stream or
// in global order, delivered to durable subscriber groups with retries and
// parking of poison events, snapshots, and generic helpers for aggregates
// and projections. Everything lives in one JetStream stream
// (engine.StreamEvents) whose sequence is the global position.
//
// Each event is one message on the subject
//
//	plexus.events.<category>.<stream>.<type>
//
// where the category is the stream id up to its first '-' (the usual
// event-sourcing convention: stream "user-42" is in category "user"), and
// '.' inside a token is written as '~' (names never contain '~'). The
// per-stream version is kept in a header and guarded by
// Nats-Expected-Last-Subject-Sequence over the stream's subjects
// (plexus.events.<category>.<stream>.*), so a version can never be written
// twice. Appends of more than one event use JetStream atomic batches.
package eventstore
