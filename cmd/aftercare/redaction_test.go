package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"aftercare/engine"
)

// TestLogsNeverHoldHealthData runs a conversation full of health data, a
// name and a phone number with debug JSON logs, then checks that none of
// it reached the log: logs carry IDs, levels and counts only.
func TestLogsNeverHoldHealthData(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Log = LogConfig{Level: "debug", Format: "json", File: "stderr"} // the console would log to a file
	secrets := []string{
		"Jane Quinlan", "+1-555-0142", "555-0142", "left breast", "I fainted", "stabbing pain",
		"chest hurts", "my husband", "Sample Acupuncture Clinic", "+1-555-0100",
	}
	input := strings.Join([]string{
		"hi, this is Jane Quinlan, call me on +1-555-0142",
		"an hour ago", "Dry needling", "left breast", "No", "No, for me", "Yes, check in with me",
		"can I run tonight? my husband asks",
		"stabbing pain and my chest hurts",
		"I fainted",
	}, "\n") + "\n"
	var logs, out bytes.Buffer
	m := &Main{Stdin: strings.NewReader(input), Stdout: &out, Stderr: &logs, Config: cfg,
		Getenv: func(k string) string { return map[string]string{EnvDataDir: dir}[k] },
		Started: func(r *Running) {
			// A display name arrives from platforms with every message.
			r.Service.Receive(context.Background(), engine.Inbound{Patient: "telegram:99", Text: "dizzy, Jane Quinlan here", DisplayName: "Jane Quinlan"})
		}}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "STAFF ALERT EMERGENCY") {
		t.Fatalf("the conversation did not reach an escalation; the test proves nothing:\n%s", out.String())
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"escalation"`) {
		t.Fatalf("expected structured escalation logs:\n%s", logs.String())
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log holds %q:\n%s", s, logs.String())
		}
	}
}
