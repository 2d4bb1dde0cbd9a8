package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
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
			if got := appendLineJSON(&l, nil); !bytes.Equal(got, want) {
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
		if got := appendLineJSON(&l, nil); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkTranscriptLine(b *testing.B) {
	l := TranscriptLine{At: time.Now(), From: FromBot, Kind: engine.KindReply, Text: "Coffee is fine today; drink plenty of water too."}
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			appendLineJSON(&l, nil)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(l)
		}
	})
}

func TestOutboundJSONIsWhatEncodingJSONWrites(t *testing.T) {
	at := time.Date(2026, 1, 5, 10, 0, 0, 5, time.UTC)
	for _, m := range []engine.Outbound{
		{To: "telegram:1", Kind: engine.KindReply, Text: "Coffee is fine.", Created: at},
		{ID: 7, To: engine.StaffAddress, Channel: "telegram:-100", Kind: engine.KindAlert, Level: engine.Urgent, Patient: "telegram:1",
			Text: "URGENT: \"numb\" <arm> & \u2028", Choices: []engine.Choice{{ID: "ack:1", Label: "Acknowledge"}, {ID: "x", Label: "bad \xff"}},
			EscalationID: 1, Created: at.In(time.FixedZone("", 3600)), Attempts: 3, NotBefore: at.Add(time.Minute)},
		{To: "discord:9", Kind: engine.KindCheckin, Text: "", Choices: []engine.Choice{}},
	} {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendOutboundJSON(nil, &m); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzOutboundJSON(f *testing.F) {
	f.Add("telegram:1", "hello", "ack:1", "Acknowledge", uint64(3), 2)
	f.Add("", "bad \xff \u2029 <&>", "", "", uint64(0), 0)
	f.Fuzz(func(t *testing.T, to, text, id, label string, esc uint64, level int) {
		m := engine.Outbound{ID: esc, To: engine.PatientID(to), Channel: engine.PatientID(label), Kind: engine.Kind(id), Level: engine.Level(level % 4),
			Patient: engine.PatientID(text), Text: text, EscalationID: esc, Attempts: level, Created: time.Unix(int64(esc%(1<<33)), 0).UTC()}
		if id != "" {
			m.Choices = []engine.Choice{{ID: id, Label: label}}
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Skip()
		}
		if got := appendOutboundJSON(nil, &m); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// fillAll sets every field reachable from v to a distinct non-zero value.
func fillAll(t *testing.T, v reflect.Value, n *int) {
	t.Helper()
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n % 4)) // levels stay in range
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillAll(t, s.Index(i), n)
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1_700_000_000+int64(*n), int64(*n)).UTC()))
			return
		}
		for i := range v.NumField() {
			fillAll(t, v.Field(i), n)
		}
	default:
		t.Fatalf("a field of kind %s: teach store/jsonappend.go to write it", v.Kind())
	}
}

func TestJSONAppendersWriteEveryField(t *testing.T) {
	// A field added to engine.Outbound or TranscriptLine must be added to
	// its appender too: filled in, every field must come out as
	// encoding/json writes it.
	var m engine.Outbound
	n := 0
	fillAll(t, reflect.ValueOf(&m).Elem(), &n)
	want, _ := json.Marshal(m)
	if got := appendOutboundJSON(nil, &m); !bytes.Equal(got, want) {
		t.Errorf("Outbound:\n got %s\nwant %s", got, want)
	}
	var l TranscriptLine
	fillAll(t, reflect.ValueOf(&l).Elem(), &n)
	want, _ = json.Marshal(l)
	if got := appendLineJSON(&l, nil); !bytes.Equal(got, want) {
		t.Errorf("TranscriptLine:\n got %s\nwant %s", got, want)
	}
}
