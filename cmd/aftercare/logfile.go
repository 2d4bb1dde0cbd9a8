package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// openLog returns the logger the bot runs with, per log.file, and a
// function that closes what it opened. By default that is the logger it
// already has (stderr). With the console on, stdout and stderr are the
// terminal the conversation happens in, so logs go to aftercare.log in
// data_dir instead and the console says so once, before the conversation
// starts: a log line never lands between the patient's chat lines.
func (m *Main) openLog(cfg Config, consoleOn bool, current *slog.Logger) (*slog.Logger, func(), error) {
	path := cfg.Log.File
	if path == "stderr" || (path == "" && !consoleOn) {
		return current, func() {}, nil
	}
	if path == "" {
		path = filepath.Join(cfg.DataDir, "aftercare.log")
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if consoleOn {
		fmt.Fprintf(m.Stderr, "(logs go to %s)\n", path)
	}
	return newLogger(cfg.Log, f), func() { f.Close() }, nil
}
