package engine

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnreachable is returned (wrapped) by a platform sender when the
// recipient can no longer be reached at all: the patient blocked the bot on
// Telegram (HTTP 403) or closed their DMs on Discord (error 50007). Retrying
// is pointless; the patient is marked unreachable and staff are told.
var ErrUnreachable = errors.New("recipient unreachable")

// RetryAfterError is returned by a platform sender when the platform asked
// us to slow down (HTTP 429). The message is kept and retried after After.
type RetryAfterError struct {
	// After is how long the platform asked us to wait.
	After time.Duration
	// Err is the platform's error, for logs (it must not contain a token).
	Err error
}

// Error describes the wait.
func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("rate limited, retry after %s: %v", e.After, e.Err)
}

// Unwrap returns the platform's error.
func (e *RetryAfterError) Unwrap() error { return e.Err }
