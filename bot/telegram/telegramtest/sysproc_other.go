//go:build !linux

package telegramtest

import "syscall"

// sysProcAttr has nothing to add outside Linux; start.js also exits when its
// stdin closes.
func sysProcAttr() *syscall.SysProcAttr { return nil }
