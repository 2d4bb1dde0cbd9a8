package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Sender delivers outbound messages on one platform. The service's
// dispatcher calls Send from one goroutine per platform, paced to the
// platform's limits, in priority order; the adapter only translates.
//
// Send returns nil once the platform accepted the whole message (splitting a
// long text into several platform messages is the adapter's job). It returns
// an error wrapping ErrUnreachable when the recipient blocked the bot or
// closed DMs (never retried), a *RetryAfterError on HTTP 429, and any other
// error for transient failures (retried with backoff). Staff messages arrive
// with m.Channel set to one of this platform's staff channels.
type Sender interface {
	// Platform is the platform name this sender serves, the prefix of the
	// PatientIDs it can reach ("telegram", "discord", "console").
	Platform() string
	// Send delivers one message.
	Send(ctx context.Context, m engine.Outbound) error
}

// ErrUnreachable is returned (wrapped) by a Sender when the recipient can no
// longer be reached at all: the patient blocked the bot on Telegram (HTTP
// 403) or closed their DMs on Discord (error 50007). It is declared here,
// beside Sender, because it is part of what a delivery attempt answers the
// dispatcher, not of the conversation: retrying is pointless, so the
// dispatcher marks the patient unreachable (dispatch.go) and staff are told.
// Check it with errors.Is.
var ErrUnreachable = errors.New("recipient unreachable")

// RetryAfterError is returned by a Sender when the platform asked us to slow
// down (HTTP 429). The dispatcher keeps the message and tries again after
// After instead of counting a failure (dispatch.go). Check it with
// errors.As.
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

// Unwrap returns the platform's error, so errors.Is and errors.As see
// through the wait to its cause.
func (e *RetryAfterError) Unwrap() error { return e.Err }
