package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aftercare-clinic/aftercare/triage"
)

// triageResult is one line of `aftercare triage` output.
type triageResult struct {
	Level string   `json:"level"`
	Signs []string `json:"signs"`
}

// triage classifies one message per stdin line and writes one JSON object
// per line, in order. Lines of any length are read whole.
func (m *Main) triage(ctx context.Context, args []string) error {
	fs, cfgPath, err := m.flags("triage", args, 0)
	if err != nil {
		return err
	}
	tr := triage.Default()
	if *cfgPath != "" || m.Config != nil {
		cfg, err := m.loadClinic(fs, *cfgPath)
		if err != nil {
			return err
		}
		if len(cfg.TriageRules) > 0 {
			if tr, err = triage.LoadFiles(cfg.TriageRules...); err != nil {
				return &ConfigError{File: *cfgPath, Key: "triage_rules", Msg: err.Error()}
			}
		}
	}
	r := bufio.NewReaderSize(m.Stdin, 64*1024)
	w := bufio.NewWriter(m.Stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if len(line) > 0 || err == nil {
			line = strings.TrimRight(line, "\r\n")
			f := tr.Triage(line, -1)
			signs := f.Signs
			if signs == nil {
				signs = []string{}
			}
			if e := enc.Encode(triageResult{Level: f.Level.String(), Signs: signs}); e != nil {
				return fmt.Errorf("triage: writing output: %w", e)
			}
			if r.Buffered() == 0 {
				w.Flush() // answer interactive callers line by line
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("triage: reading input: %w", err)
		}
	}
}
