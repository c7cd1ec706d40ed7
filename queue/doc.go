// Package queue owns Plexus's durable message queues: priorities, delays,
// retries with backoff, visibility timeouts, message TTL, overflow
// policies and dead letters, on NATS JetStream.
//
// A Broker (broker.go) is the queue semantics on the engine: it creates
// queues, publishes, receives, settles deliveries by receipt and
// dead-letters, for the node and for any Go program connected to the
// engine. API (http.go) serves it over HTTP as docs/openapi.yaml
// describes; Client (client.go) calls that API from programs that only
// know a node's admin URL and token.
//
// Each queue is a work-queue stream with one subject and one pull
// consumer per priority level in use (higher levels are swept first, FIFO
// within one); its options live in a key-value bucket. A receive hands out
// a receipt (receipt.go) bound to that one delivery by the delivery ledger
// (ledger.go), so a receipt of an older delivery can never settle a newer
// one. Files by concept: publish.go, receive.go and longpoll.go (waiting,
// with the doorbell of doorbell.go), ack.go, redeliver.go, deadletter.go,
// size.go (maxSize and overflow), stats.go, housekeeping.go (expiry and
// counter flushes of a started broker), subscribe.go (a Go handler loop).
package queue
