package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

func TestTranscriptJSONIsWhatEncodingJSONWrites(t *testing.T) {
	at := time.Date(2026, 1, 5, 10, 0, 0, 123456789, time.FixedZone("", -6*3600))
	texts := []string{"", "hello", `say "hi" \ back`, "line\nbreak\r\ttab\b\f\x00\x1f", "<b>&amp;</b>", "café ñ 😀", "bad \xff utf8 \xc3", "sep \u2028 \u2029 end", "\x7f del"}
	for _, text := range texts {
		for _, l := range []TranscriptLine{
			{At: at, From: FromPatient, Text: text, Choice: text},
			{At: at.UTC(), From: FromBot, Kind: engine.KindEscalation, Text: text, Level: engine.Emergency},
			{From: FromClinic, Kind: engine.KindReply, Text: text, Staff: text},
		} {
			want, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.appendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("%q:\n got %s\nwant %s", text, got, want)
			}
		}
	}
}

func FuzzTranscriptJSON(f *testing.F) {
	f.Add("hello", "yes", int64(1767600000), 5)
	f.Add("bad \xff \u2028 <&>", "", int64(0), 0)
	f.Fuzz(func(t *testing.T, text, choice string, sec int64, nsec int) {
		l := TranscriptLine{At: time.Unix(sec%(1<<35), int64(nsec)%1e9).UTC(), From: FromPatient, Text: text, Choice: choice, Staff: choice}
		want, err := json.Marshal(l)
		if err != nil {
			t.Skip() // times json refuses
		}
		if got := l.appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkTranscriptLine(b *testing.B) {
	l := TranscriptLine{At: time.Now(), From: FromBot, Kind: engine.KindReply, Text: "Coffee is fine today; drink plenty of water too."}
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.appendJSON(nil)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(l)
		}
	})
}
