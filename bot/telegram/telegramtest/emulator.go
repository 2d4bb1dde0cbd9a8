// Package telegramtest runs the Telegram end-to-end tests' peer: the npm
// package telegram-test-api (a Bot API emulator maintained by someone else),
// a Client that plays patients and staff through the emulator's client API,
// and a Proxy in front of the emulator's bot API that injects 429, 5xx, 403
// and network failures and gives getUpdates real offset semantics.
//
// It is imported by tests only (bot/telegram and cmd/aftercare).
//
// # Requirements
//
// Node.js (18 or later) and npm must be on PATH. The emulator is pinned in
// bot/telegram/testdata/emulator (package.json and package-lock.json); when
// its node_modules is missing, StartEmulator runs "npm ci" there, which needs
// the npm registry. Without node or npm the tests fail, they do not skip.
//
// # Emulator quirks (telegram-test-api 4.2.1)
//
//   - Bot getUpdates ignores offset and timeout: it returns every unread
//     update at once and marks it read, so an update fetched by a bot that
//     then crashes is never delivered again. The Proxy keeps fetched updates
//     until a getUpdates offset confirms them, as Telegram does.
//   - Unsupported methods answer HTTP 500 with {"message": ...} instead of a
//     Bot API error. answerCallbackQuery, editMessageText,
//     editMessageReplyMarkup, deleteMessage, setWebhook and deleteWebhook are
//     supported; getWebhookInfo, getChat and the rest are not.
//   - Callback queries carry whatever "message" the client sends (the
//     built-in client sends none with a message_id or keyboard); Client.Press
//     sends the bot's message as Telegram would.
//   - editMessageText keeps the old reply_markup (Telegram removes it).
//   - In webhook mode the next update_id is assigned only after the webhook
//     call returns: two messages sent while a delivery is in flight share an
//     update_id (wait for Proxy.WebhookIdle between messages).
//   - Webhooks are posted without the X-Telegram-Bot-Api-Secret-Token
//     header, never retried, and a non-2xx answer is an unhandled promise
//     rejection in the emulator (start.js logs it instead of crashing). The
//     Proxy relays webhooks with the registered secret and retries like
//     Telegram.
//   - Message dates from the bot side are in milliseconds, not seconds.
//   - Update IDs and message IDs share one counter across bot and user
//     messages, so IDs have gaps.
package telegramtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EmulatorVersion is the telegram-test-api version pinned in
// testdata/emulator/package.json.
const EmulatorVersion = "4.2.1"

// Emulator is a running telegram-test-api server.
type Emulator struct {
	// URL is the server's base URL ("http://127.0.0.1:PORT"); the bot API
	// is at URL+"/bot<token>/<method>", the client API at URL+"/sendMessage" etc.
	URL string
}

// Endpoint returns the Bot API endpoint format for the library and
// telegram.Config.APIEndpoint.
func (e *Emulator) Endpoint() string { return e.URL + "/bot%s/%s" }

// Dir returns the directory holding the pinned emulator (package.json,
// package-lock.json, start.js).
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("telegramtest: cannot find own source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata", "emulator")
}

// EnsureInstalled runs "npm ci" in Dir() unless the pinned emulator is
// already installed. Test binaries of several packages may call it at once;
// a file lock makes them take turns.
func EnsureInstalled(t testing.TB) {
	t.Helper()
	dir := Dir()
	if installed(dir) {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm not found on PATH: the Telegram end-to-end tests need Node.js 18+ and npm to install the pinned Bot API emulator (then run: cd %s && npm ci)", dir)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("telegramtest: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("telegramtest: lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if installed(dir) {
		return
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in %s failed (the npm registry must be reachable): %v\n%s", dir, err, out)
	}
	if !installed(dir) {
		t.Fatalf("npm ci in %s did not install telegram-test-api %s", dir, EmulatorVersion)
	}
}

func installed(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "telegram-test-api", "package.json"))
	if err != nil {
		return false
	}
	var pkg struct {
		Version string `json:"version"`
	}
	return json.Unmarshal(b, &pkg) == nil && pkg.Version == EmulatorVersion
}

// StartEmulator installs (if needed) and starts the emulator on a free
// localhost port, waits until it answers, and stops it when the test ends.
func StartEmulator(t testing.TB) *Emulator {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found on PATH: the Telegram end-to-end tests need Node.js 18+ and npm (install them, then: cd %s && npm ci)", Dir())
	}
	EnsureInstalled(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		e, err := startOnce(t, node)
		if err == nil {
			return e
		}
		lastErr = err
	}
	t.Fatalf("telegramtest: the emulator did not start: %v", lastErr)
	return nil
}

// syncBuffer collects the emulator's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 1<<20 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startOnce(t testing.TB, node string) (*Emulator, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(node, "start.js", strconv.Itoa(port))
	cmd.Dir = Dir()
	cmd.SysProcAttr = sysProcAttr()
	stdin, err := cmd.StdinPipe() // start.js exits when this closes
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node: %w", err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), "READY ") {
				ready <- true
				signalled = true
			}
		}
		if !signalled {
			ready <- false
		}
	}()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	select {
	case ok := <-ready:
		if !ok {
			stop()
			return nil, fmt.Errorf("emulator exited before it was ready: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		stop()
		return nil, fmt.Errorf("emulator not ready after 30s: %s", stderr.String())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			if s := stderr.String(); s != "" {
				t.Logf("emulator stderr:\n%s", s)
			}
		}
	})
	return &Emulator{URL: "http://127.0.0.1:" + strconv.Itoa(port)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
