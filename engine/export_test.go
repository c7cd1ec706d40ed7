package engine

import "time"

// SyncIntervalOf is the embedded server's fsync interval, for tests.
func SyncIntervalOf(e *Engine) time.Duration { return e.srv.JetStreamConfig().SyncInterval }
