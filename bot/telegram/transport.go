package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

// redactor removes the bot token from anything that may reach a log or an
// error. The library builds URLs of the form .../bot<token>/<method>, and
// net/http puts the URL into every transport error, so every error the
// library returns is suspect.
type redactor struct{ token string }

const redacted = "<token>"

// string replaces the token (plain and URL-escaped) in s.
func (r redactor) string(s string) string {
	if r.token == "" {
		return s
	}
	s = strings.ReplaceAll(s, r.token, redacted)
	if esc := url.PathEscape(r.token); esc != r.token {
		s = strings.ReplaceAll(s, esc, redacted)
	}
	if esc := url.QueryEscape(r.token); esc != r.token {
		s = strings.ReplaceAll(s, esc, redacted)
	}
	return s
}

func (r redactor) contains(s string) bool { return r.string(s) != s }

// safeError is an error whose text is known to be free of the token. It
// keeps the cause for errors.Is/As only when the cause's own text is clean too.
type safeError struct {
	msg   string
	cause error
}

func (e *safeError) Error() string { return e.msg }
func (e *safeError) Unwrap() error { return e.cause }

// err returns err with the token removed from its text. *url.Error (which
// holds the full request URL) is unwrapped to its cause so context.Canceled
// and timeouts stay detectable with errors.Is.
func (r redactor) err(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		cause := ue.Err
		if cause != nil && r.contains(cause.Error()) {
			cause = nil
		}
		msg := err.Error()
		return &safeError{msg: r.string(msg), cause: cause}
	}
	if r.contains(err.Error()) {
		return &safeError{msg: r.string(err.Error())}
	}
	return err
}

// doer is the tgbotapi.HTTPClient the library uses. It binds a context to
// every request (the library builds requests without one, so without this a
// cancelled Send or Run would wait out the whole timeout), removes the token
// from transport errors, and turns non-JSON error responses (a proxy's HTML
// 502, an emulator's {"message":...} 500) into Bot API errors that carry the
// HTTP status, because the library ignores the status code and would
// otherwise report a JSON decoding error or an error with code 0.
type doer struct {
	client *http.Client
	red    redactor
	ctx    context.Context
}

func (d doer) Do(req *http.Request) (*http.Response, error) {
	if d.ctx != nil {
		req = req.WithContext(d.ctx)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, d.red.err(err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	var ar tgbotapi.APIResponse
	if rerr == nil && json.Unmarshal(body, &ar) == nil && !ar.Ok && ar.ErrorCode != 0 {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	desc := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	var other struct {
		Message     string `json:"message"`
		Description string `json:"description"`
	}
	if json.Unmarshal(body, &other) == nil {
		detail := other.Description
		if detail == "" {
			detail = other.Message
		}
		if detail != "" {
			if len(detail) > 200 {
				detail = detail[:200] + "…"
			}
			desc += ": " + detail
		}
	}
	ar = tgbotapi.APIResponse{Ok: false, ErrorCode: resp.StatusCode, Description: d.red.string(desc), Parameters: ar.Parameters}
	fixed, _ := json.Marshal(ar)
	resp.Body = io.NopCloser(bytes.NewReader(fixed))
	resp.ContentLength = int64(len(fixed))
	return resp, nil
}
