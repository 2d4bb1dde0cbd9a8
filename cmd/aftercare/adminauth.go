package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// The admin endpoints (/admin/visit, /admin/export, /admin/backup) hand out
// patient records and the whole database, so a loopback listener is not
// protection enough: every local user can reach it, and so can any web
// page the clinic's browser opens (a cross-site POST, or DNS rebinding a
// hostile name to 127.0.0.1). Each admin request must therefore
//
//   - name the listener by an expected Host (the configured listen host,
//     localhost, 127.0.0.1 or [::1], with the listening port),
//   - carry no Origin header and no Sec-Fetch-Site other than "none" or
//     "same-origin" (browsers add them; the CLI does not),
//   - present the admin token as "Authorization: Bearer TOKEN" (a header a
//     page cannot add to a cross-site request without a CORS preflight,
//     which this server never grants),
//   - send its body, if any, as application/json.
//
// The token lives in adminTokenFile beside the database, mode 0600, so
// only the account that runs the bot (and root) can read it.

// adminTokenFile is the admin token's file name in the data directory.
const adminTokenFile = "admin.token"

// adminActor is the audit trail's actor for reads made through the admin
// endpoints: whoever holds the admin token.
const adminActor = "admin-token"

func adminTokenPath(cfg Config) string { return filepath.Join(cfg.DataDir, adminTokenFile) }

// ensureAdminToken returns the admin token, creating its file (mode 0600,
// 32 random bytes) when missing. A file others can read is refused: its
// token would no longer tell the bot's own account apart.
func ensureAdminToken(path string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_, werr := f.WriteString(tok + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return "", fmt.Errorf("admin token %s: %w", path, werr)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("admin token %s: %w", path, err)
	}
	return readAdminToken(path)
}

// readAdminToken reads the token the CLI sends to the running bot.
func readAdminToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin token %s: %w (run this command as the account that runs the bot)", path, err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("admin token %s: mode %v lets other accounts read it; run: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token %s: %w (run this command as the account that runs the bot)", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("admin token %s: too short; delete the file and restart the bot to make a new one", path)
	}
	return tok, nil
}

// adminGuard admits only the requests described above.
type adminGuard struct {
	token string
	hosts map[string]bool // lower-case Host values accepted
	log   *slog.Logger
}

// newAdminGuard accepts Host values naming listen's host, localhost,
// 127.0.0.1 or [::1] with the port actually listened on (bound: the
// listener's address, which differs from listen when its port is 0).
func newAdminGuard(token, listen, bound string, log *slog.Logger) adminGuard {
	g := adminGuard{token: token, hosts: map[string]bool{}, log: log}
	host, _, _ := net.SplitHostPort(listen)
	_, port, _ := net.SplitHostPort(bound)
	for _, h := range []string{host, "localhost", "127.0.0.1", "::1"} {
		if h == "" {
			continue
		}
		g.hosts[strings.ToLower(net.JoinHostPort(h, port))] = true
		if port == "80" { // clients leave the default port out
			bare := h
			if strings.Contains(h, ":") {
				bare = "[" + h + "]"
			}
			g.hosts[strings.ToLower(bare)] = true
		}
	}
	return g
}

// wrap guards next. Refusals are logged with the path and the reason only.
func (g adminGuard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, reason := g.check(r)
		if status != 0 {
			g.log.Warn("admin request refused", "path", r.URL.Path, "reason", reason, "status", status)
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="aftercare admin"`)
			}
			http.Error(w, reason, status)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// check returns 0 for an admitted request, else the status and reason.
func (g adminGuard) check(r *http.Request) (int, string) {
	if !g.hosts[strings.ToLower(r.Host)] {
		return http.StatusMisdirectedRequest, "unexpected Host header"
	}
	if r.Header.Get("Origin") != "" {
		return http.StatusForbidden, "cross-origin requests are refused"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "none", "same-origin":
	default:
		return http.StatusForbidden, "cross-site requests are refused"
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(g.token)) != 1 {
		return http.StatusUnauthorized, "admin token required (Authorization: Bearer, from " + adminTokenFile + " in the data directory)"
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ct := r.Header.Get("Content-Type")
		if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
			return http.StatusUnsupportedMediaType, "body must be application/json"
		}
	}
	return 0, ""
}
