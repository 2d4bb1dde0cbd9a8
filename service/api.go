package service

import (
	"context"

	"github.com/aftercare-clinic/aftercare/engine"
)

// Sender delivers outbound messages on one platform. The service's
// dispatcher calls Send from one goroutine per platform, paced to the
// platform's limits, in priority order; the adapter only translates.
//
// Send returns nil once the platform accepted the whole message (splitting a
// long text into several platform messages is the adapter's job). It returns
// an error wrapping engine.ErrUnreachable when the recipient blocked the bot
// or closed DMs (never retried), an *engine.RetryAfterError on HTTP 429, and
// any other error for transient failures (retried with backoff). Staff
// messages arrive with m.Channel set to one of this platform's staff
// channels.
type Sender interface {
	// Platform is the platform name this sender serves, the prefix of the
	// PatientIDs it can reach ("telegram", "discord", "console").
	Platform() string
	// Send delivers one message.
	Send(ctx context.Context, m engine.Outbound) error
}
