package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// TestDiskWriteFailure runs the real binary with a file-size limit (ulimit
// -f), so the database cannot grow and commits fail with EFBIG, as on a
// full disk. The bot must say so clearly, confirm no update it could not
// commit, keep the state from before intact, and catch up once there is
// room again.
func TestDiskWriteFailure(t *testing.T) {
	dir := t.TempDir()
	api := &fakeBotAPI{}
	srv := newServer(api)
	defer srv.Close()
	clockFile := filepath.Join(dir, "now")
	clock.SetFile(clockFile, time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC))
	cfgPath := filepath.Join(dir, "config.json")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`{
  "clinic": {"name": "Disk Test Clinic", "phone": "+1 312 555 2368", "emergency_number": "911", "time_zone": "UTC",
             "quiet_hours": {"start": "00:00", "end": "00:00"}},
  "data_dir": %q,
  "telegram": {"api_endpoint": %q, "staff_chat_id": -100, "poll_interval": "5ms", "poll_timeout": "0s", "request_timeout": "2s"},
  "pacing": {"telegram": {"per_second": 1000, "per_chat_per_second": 100}},
  "log": {"level": "info", "format": "json"}
}`, filepath.Join(dir, "data"), srv.URL+"/bot%s/%s")), 0o600)
	bin := buildBinary(t)
	env := append(os.Environ(), EnvTelegramToken+"=123:disk-test", EnvTestClockFile+"="+clockFile)
	logPath := filepath.Join(dir, "bot.log")
	logf, _ := os.Create(logPath)
	defer logf.Close()

	// 512 blocks of 512 bytes (dash) or 1 KiB (bash): room for a few
	// dozen patients, not for 400.
	limited := &botProcess{t: t, bin: "/bin/sh", args: []string{"-c", `ulimit -f 512 && exec "$0" "$@"`, bin, "--config", cfgPath}, env: env, log: logf}
	limited.start()
	const patients = 400
	for i := 0; i < patients; i++ {
		api.push(int64(200000+i), "hi, can I go for a run today? "+strings.Repeat("long message ", 40))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "file too large") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write failure within 60 s; log:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if err := limited.stop(); err != nil {
		t.Logf("stop under a full disk: %v", err)
	}
	api.mu.Lock()
	confirmed := api.confirmed
	api.mu.Unlock()
	if confirmed > patients {
		t.Fatalf("all %d updates confirmed although writes failed", patients)
	}
	log, _ := os.ReadFile(logPath)
	if !strings.Contains(string(log), `"msg":"step failed"`) {
		t.Errorf("the failure is not reported as a failed step:\n%s", log)
	}

	// The state from before the failure is intact and readable.
	db := filepath.Join(dir, "data", "aftercare.db")
	rep, err := store.Check(db)
	if err != nil || !rep.OK() {
		t.Fatalf("database after write failures: %v\n%s", err, rep)
	}
	st, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := 0
	st.Patients(func(engine.State) error { before++; return nil })
	st.Close()
	// Every update confirmed to Telegram must be in the database.
	if before < confirmed-1 {
		t.Fatalf("%d updates confirmed but only %d patients stored: confirmed updates were lost", confirmed-1, before)
	}

	// With room again, the bot catches up on everything not confirmed.
	free := &botProcess{t: t, bin: bin, args: []string{"--config", cfgPath}, env: env, log: logf}
	free.start()
	deadline = time.Now().Add(60 * time.Second)
	for !api.allConfirmed() {
		if time.Now().After(deadline) {
			t.Fatal("updates not caught up after the disk was freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := free.stop(); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	after := 0
	st.Patients(func(engine.State) error { after++; return nil })
	t.Logf("patients stored before the failure: %d, after recovery: %d", before, after)
	if after != patients {
		t.Fatalf("%d patients after recovery, want %d", after, patients)
	}
}
