// Package telegram connects Aftercare to Telegram: patients talk to the
// clinic's bot, and staff alerts go to a configured staff chat.
//
// It uses github.com/go-telegram-bot-api/telegram-bot-api/v5 for the Bot API
// types and calls, and works around that library's limits: it runs its own
// long-poll loop instead of GetUpdatesChan (which confirms an update as soon
// as it is buffered, so a crash loses it), gives every request a timeout and
// a context, and maps 429 and 403 to the errors the service's dispatcher
// understands.
//
// # Delivery guarantees
//
// An update is confirmed to Telegram (the getUpdates offset moves past it)
// only after the Receiver returned nil for it, and the Receiver dedupes by
// DedupeKey, so a crash at any point neither loses nor doubles an update.
// A Receiver error is retried with backoff, never skipped.
//
// # Invites
//
// A deep link t.me/BOT?start=TOKEN arrives as the text "/start TOKEN" (or
// "/start@BOT TOKEN"): the adapter hands the token over in
// service.Inbound.Invite, the text as sent, so the service never reads an
// invite back out of a message (inbound.go).
//
// # Privacy
//
// Logs carry IDs only (update, chat, message, outbound IDs): never message
// text, names or phone numbers. The bot token never appears in errors or
// logs; the library puts it in every request URL, so every error is
// redacted before it leaves the package.
//
// # Concurrency
//
// Send may be called from any goroutine while Run is running. Run handles
// polled updates one at a time, in order; the webhook handler handles one
// update per chat at a time.
package telegram
