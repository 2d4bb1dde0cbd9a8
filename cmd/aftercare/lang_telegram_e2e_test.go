package main

import (
	"strings"
	"testing"
)

// TestTelegramLanguageCode checks, through the Telegram emulator, that a new
// patient whose Telegram app is in Spanish (from.language_code "es") is
// answered in Spanish, buttons included, and one without it in the clinic's
// English.
func TestTelegramLanguageCode(t *testing.T) {
	w := startTelegramWorld(t)
	es := tgUser(6001)
	es.LanguageCode = "es"
	en := tgUser(6002)

	w.command(t, es, es.Private(), "/start")
	m := w.next(t, es.ID, 0, "¿Cuándo fue su sesión?")
	if !strings.Contains(m.Text, "Hola, soy el asistente") {
		t.Errorf("first message not in Spanish: %q", m.Text)
	}
	w.press(t, es, m, "Hace un momento")
	w.next(t, es.ID, 1, "¿Qué tratamiento recibió?")

	w.command(t, en, en.Private(), "/start")
	m = w.next(t, en.ID, 0, "When was your session?")
	if strings.Contains(m.Text, "Hola") {
		t.Errorf("English patient greeted in Spanish: %q", m.Text)
	}
}
