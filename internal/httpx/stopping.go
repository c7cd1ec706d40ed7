package httpx

import "context"

type stoppingKey struct{}

// WithStopping returns a context carrying a channel that the server closes
// when it begins a graceful shutdown. Listeners set it as the base context of
// every request.
func WithStopping(ctx context.Context, ch <-chan struct{}) context.Context {
	return context.WithValue(ctx, stoppingKey{}, ch)
}

// Stopping returns a channel closed when the server serving ctx's request
// begins shutting down. Long-lived handlers (server-sent events, long polls)
// select on it besides ctx.Done() and end early so shutdown stays quick.
// It returns nil (never ready) outside such a server.
func Stopping(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppingKey{}).(<-chan struct{})
	return ch
}
