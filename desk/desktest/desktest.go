// Package desktest starts the headless Chromium the staff desk's browser
// tests drive (through chromedp), for the desk's own tests and the whole
// bot's end-to-end test alike, so both find and launch the browser the
// same way. Chromium comes from the system (Debian's package; .ci/run
// installs it): without it the tests fail, they never skip.
package desktest

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// RunBound bounds a whole browser run, so a broken page fails its test
// instead of hanging it; every wait inside a test is on a condition.
const RunBound = 3 * time.Minute

// Chromium returns the path of the system's Chromium, failing t when there
// is none (with what to install).
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the desk's browser tests need Chromium: install it (Debian: apt-get install -y chromium; .ci/run does) and put it on PATH")
	return ""
}

// Browser starts headless Chromium (exe, from Chromium) with a 1200×900
// window and returns a browser context bounded by RunBound; the browser is
// closed when t ends.
func Browser(t testing.TB, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1200, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelA)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	tctx, cancelT := context.WithTimeout(bctx, RunBound)
	t.Cleanup(cancelT)
	return tctx
}
