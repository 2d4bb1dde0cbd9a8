// Package webhook delivers staff alerts to the clinic's own systems as
// signed HTTP POSTs, so a clinic can connect SMS, paging or its practice
// software without Aftercare knowing any of them.
//
// Each message is POSTed as JSON. The request carries
//
//	X-Aftercare-Timestamp: unix seconds
//	X-Aftercare-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>
//	Idempotency-Key:       aftercare-<message id>
//
// so the receiver can check origin and freshness, and drop the duplicate a
// retry after a lost response may cause. Non-2xx answers and network
// errors are retried by the outbox with backoff; a 429 with Retry-After
// is honoured.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// Platform is the platform name of webhook channels ("webhook:<name>").
const Platform = "webhook"

// Endpoint is one configured receiver.
type Endpoint struct {
	// Name identifies the endpoint in channel IDs ("webhook:sms").
	Name string `json:"name"`
	// URL receives the POSTs (https recommended).
	URL string `json:"url"`
	// SecretEnv names the environment variable holding the HMAC secret.
	SecretEnv string `json:"secret_env"`
}

// Validate names the bad key of endpoint i.
func (e Endpoint) Validate(i int) error {
	key := fmt.Sprintf("webhooks[%d]", i)
	if e.Name == "" || strings.ContainsAny(e.Name, ": ") {
		return fmt.Errorf("%s.name: must be a short name without spaces or colons, e.g. \"sms\"", key)
	}
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s.url: %q is not an http(s) URL", key, e.URL)
	}
	if e.SecretEnv == "" {
		return fmt.Errorf("%s.secret_env: name the environment variable that holds the signing secret", key)
	}
	return nil
}

// Payload is the JSON body of a webhook POST.
type Payload struct {
	ID           uint64    `json:"id"`
	Kind         string    `json:"kind"`
	Level        string    `json:"level,omitempty"`
	Patient      string    `json:"patient,omitempty"`
	EscalationID uint64    `json:"escalation_id,omitempty"`
	Text         string    `json:"text"`
	Created      time.Time `json:"created"`
}

// Sender POSTs to the configured endpoints. It implements the service's
// Sender for the "webhook" platform.
type Sender struct {
	client  *http.Client
	targets map[string]target
	now     func() time.Time
}

type target struct {
	url    string
	secret []byte
}

// New returns a sender for the endpoints; getenv reads their secrets.
func New(eps []Endpoint, getenv func(string) string, client *http.Client) (*Sender, error) {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Sender{client: client, targets: map[string]target{}, now: time.Now}
	for i, e := range eps {
		if err := e.Validate(i); err != nil {
			return nil, err
		}
		sec := getenv(e.SecretEnv)
		if len(sec) < 16 {
			return nil, fmt.Errorf("webhooks[%d].secret_env: environment variable %s must hold a secret of at least 16 characters", i, e.SecretEnv)
		}
		s.targets[e.Name] = target{url: e.URL, secret: []byte(sec)}
	}
	return s, nil
}

// Channels lists the staff channel IDs of the endpoints.
func (s *Sender) Channels() []engine.PatientID {
	var out []engine.PatientID
	for name := range s.targets {
		out = append(out, engine.NewPatientID(Platform, name))
	}
	return out
}

// The dispatcher drives a Sender like any platform adapter; it answers with
// the delivery errors the service declares beside the interface.
var _ service.Sender = (*Sender)(nil)

// Platform returns "webhook".
func (s *Sender) Platform() string { return Platform }

// Sign computes the signature header value for a body at a timestamp.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Send POSTs one message to its endpoint.
func (s *Sender) Send(ctx context.Context, m engine.Outbound) error {
	name := m.Destination().Address()
	t, ok := s.targets[name]
	if !ok {
		return fmt.Errorf("webhook %q is not configured: %w", name, service.ErrUnreachable)
	}
	p := Payload{ID: m.ID, Kind: string(m.Kind), Patient: string(m.Patient), EscalationID: m.EscalationID, Text: m.Text, Created: m.Created}
	if m.Level != engine.None {
		p.Level = m.Level.String()
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Aftercare-Timestamp", ts)
	req.Header.Set("X-Aftercare-Signature", Sign(t.secret, ts, body))
	req.Header.Set("Idempotency-Key", "aftercare-"+strconv.FormatUint(m.ID, 10))
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("webhook %s: %w", name, ue.Err)
		}
		return fmt.Errorf("webhook %s: %w", name, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests:
		after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return &service.RetryAfterError{After: time.Duration(max(after, 1)) * time.Second, Err: fmt.Errorf("webhook %s: HTTP 429", name)}
	}
	return fmt.Errorf("webhook %s: HTTP %d", name, resp.StatusCode)
}
