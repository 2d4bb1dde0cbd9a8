package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
)

// ruleSigns lists every sign ID the triage rule files can report (rule
// signs and the signs score bands map to), read from the files themselves
// so a sign added later is checked too.
func ruleSigns(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "triage", "rules", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no triage rule files found: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Signs []struct {
				ID   string `json:"id"`
				Sign string `json:"sign"`
			} `json:"signs"`
			Scores map[string]struct {
				Bands []struct {
					Use string `json:"use"`
				} `json:"bands"`
			} `json:"scores"`
		}
		if err := json.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, s := range rf.Signs {
			seen[s.ID], seen[s.Sign] = true, true
		}
		for _, sc := range rf.Scores {
			for _, b := range sc.Bands {
				seen[b.Use] = true
			}
		}
	}
	delete(seen, "")
	var out []string
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// TestLogsNeverHoldHealthData runs a conversation full of health data, a
// name and a phone number with debug JSON logs, then checks that none of
// it reached the log: logs carry IDs, levels and counts only.
func TestLogsNeverHoldHealthData(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Log = LogConfig{Level: "debug", Format: "json", File: "stderr"} // the console would log to a file
	cfg.Clinic.AlertIdentity = "chart"                                  // the chart number goes into chat alerts, never into logs
	secrets := []string{
		"Jane Quinlan", "+1-555-0142", "555-0142", "left breast", "I fainted", "stabbing pain",
		"chest hurts", "my husband", "Sample Acupuncture Clinic", "+1-555-0100",
		// The staff-only identity entered with a visit, and a staff reply.
		"C-20417", "Quinlan-Ortega", "555-0199", "Ana Ruiz", "your back",
	}
	input := strings.Join([]string{
		"hi, this is Jane Quinlan, call me on +1-555-0142",
		"an hour ago", "Dry needling", "left breast", "No", "No, for me", "Yes, check in with me",
		"can I run tonight? my husband asks",
		"stabbing pain and my chest hurts",
		"I fainted",
	}, "\n") + "\n"
	// The console writes its banner while the dispatcher sends it the
	// alerts of the patients Started makes: both write to out.
	var logs, out lockedBuffer
	m := &Main{Stdin: strings.NewReader(input), Stdout: &out, Stderr: &logs, Config: cfg,
		Getenv: func(k string) string { return map[string]string{EnvDataDir: dir}[k] },
		Started: func(r *Running) {
			// A display name arrives from platforms with every message.
			ctx := context.Background()
			r.Service.Receive(ctx, service.Inbound{Patient: "telegram:99", Text: "dizzy, Jane Quinlan here", DisplayName: "Jane Quinlan"})
			// A visit with the staff-only identity, a reply from the desk,
			// and a red flag whose alert shows the chart number.
			if err := r.Service.RecordVisit(ctx, "telegram:98", engine.Visit{At: r.Clock.Now(), Treatment: engine.Acupuncture, Consent: true,
				Identity: &engine.Identity{Name: "Rosa Quinlan-Ortega", Chart: "C-20417", Phone: "+1-555-0199"}}); err != nil {
				t.Error(err)
			}
			if err := r.Service.Reply(ctx, "telegram:98", "Ana Ruiz", "How is your back, Rosa Quinlan-Ortega?"); err != nil {
				t.Error(err)
			}
			r.Service.Receive(ctx, service.Inbound{Patient: "telegram:98", Text: "I fainted"})
		}}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "STAFF ALERT EMERGENCY") {
		t.Fatalf("the conversation did not reach an escalation; the test proves nothing:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "telegram:98 (chart C-20417)") {
		t.Fatalf("the alert about the patient with an identity does not show the chart number; the test proves nothing:\n%s", out.String())
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"escalation"`) {
		t.Fatalf("expected structured escalation logs:\n%s", logs.String())
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log holds %q:\n%s", s, logs.String())
		}
	}
	// A sign name next to a patient ID is health data too: no sign the
	// triage rules know may appear in the log, as a word of its own.
	signs := ruleSigns(t)
	if len(signs) < 10 {
		t.Fatalf("found only %d sign IDs in the triage rules: %v", len(signs), signs)
	}
	for _, sg := range signs {
		re := regexp.MustCompile(`\b` + regexp.QuoteMeta(sg) + `\b`)
		for _, line := range strings.Split(logs.String(), "\n") {
			if re.MatchString(line) {
				t.Errorf("log holds the sign %q: %s", sg, line)
			}
		}
	}
}
