package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/store"
)

// fill sets every field reachable from v to a distinct non-zero value, so a
// field the state codec forgets cannot survive the round trip.
func fill(t *testing.T, v reflect.Value, n *int) {
	t.Helper()
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.25)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), n)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), n)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, n)
			fill(t, e, n)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1_700_000_000+int64(*n)*3600, int64(*n)).UTC()))
			return
		}
		for i := range v.NumField() {
			fill(t, v.Field(i), n)
		}
	default:
		t.Fatalf("engine.State has a field of kind %s: teach store/statecodec.go to encode it (under a new version byte)", v.Kind())
	}
}

func TestStateCodecKeepsEveryField(t *testing.T) {
	var st engine.State
	n := 0
	fill(t, reflect.ValueOf(&st).Elem(), &n)
	b, err := store.EncodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Errorf("round trip lost a field (a new engine.State field needs the codec in store/statecodec.go):\n got %+v\nwant %+v", got, st)
	}
	again, _ := store.EncodeState(got)
	if string(again) != string(b) {
		t.Error("encoding the decoded state gave other bytes")
	}
}

// sampleState is a state as a conversation leaves it: a visit, readiness
// answers, check-ins, a pending clarifying question, times in two zones.
func sampleState() engine.State {
	sore := 3
	chicago := time.FixedZone("", -6*3600)
	return engine.State{
		Patient: "telegram:100", DisplayName: "Ana", Step: "readiness:1", Then: "readiness",
		Visit:    &engine.Visit{At: t0.In(chicago), Treatment: engine.DryNeedling, Area: "neck", Consent: true, TZ: "America/Chicago", Source: "clinic"},
		Ready:    map[string]string{"energy": "usual", "stiffness": "same"},
		Checkins: []engine.Checkin{{Hours: 24, Sent: t0.Add(24 * time.Hour), Feel: "better", Soreness: &sore, Outcome: "ok"}, {Hours: 48, Sent: t0.Add(48 * time.Hour)}},
		Current:  1,
		Clarify: &engine.PendingClarify{Ask: engine.Clarify{Text: "Is it getting worse?", Choices: []engine.ClarifyChoice{{ID: "yes", Label: "Yes", Level: engine.Urgent}, {ID: "no", Label: "No"}}},
			Signs: []string{"numbness"}, Said: "my arm is numb", Fallback: engine.Watch, Asked: t0},
		Consent: "yes", Greeted: true, LastActive: t0.Add(time.Hour), Lang: "en", Handled: 7,
	}
}

func TestStateCodecReadsSchema1JSON(t *testing.T) {
	// Records written before the binary form are JSON; they read as before.
	st := sampleState()
	old, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var want engine.State
	if err := json.Unmarshal(old, &want); err != nil {
		t.Fatal(err)
	}
	got, err := store.DecodeState(old)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON record read as\n%+v\nwant\n%+v", got, want)
	}
	// The binary form decodes to what JSON would have: same instants and
	// zone offsets, nil for empty collections.
	b, err := store.EncodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) >= len(old) {
		t.Errorf("binary state is %d bytes, JSON %d: no smaller", len(b), len(old))
	}
	bin, err := store.DecodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(bin, want) {
		t.Errorf("binary record read as\n%+v\nwant what JSON gives\n%+v", bin, want)
	}
}

func TestStateCodecRefusesCorruptRecords(t *testing.T) {
	good, err := store.EncodeState(sampleState())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":         {},
		"unknown form":  {0x7f, 1, 2},
		"bad JSON":      []byte(`{"patient":`),
		"trailing byte": append(append([]byte(nil), good...), 0),
		"huge count":    {0x01, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for i := 1; i < len(good); i++ {
		cases[fmt.Sprintf("cut at %d", i)] = good[:i]
	}
	for name, raw := range cases {
		if _, err := store.DecodeState(raw); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func TestStoreReadsJSONStatesAndRewritesThemBinary(t *testing.T) {
	// A database of the JSON era: the state reads, the next step is
	// applied on top of it, `check` finds nothing wrong, and Walk (the
	// migration to PostgreSQL) still hands the state on as JSON.
	path := filepath.Join(t.TempDir(), "a.db")
	s := open(t, path)
	s.Close()
	st := sampleState()
	old, _ := json.Marshal(st)
	poison(t, path, "states", []byte(st.Patient), old)

	s = open(t, path)
	got, found, err := s.State(st.Patient)
	if err != nil || !found || got.Handled != 7 || got.Visit == nil || got.Visit.Area != "neck" {
		t.Fatalf("State = %+v, %v, %v", got, found, err)
	}
	ok, err := s.Apply(context.Background(), step(st.Patient, "u1"), func(in store.Input) (engine.Result, error) {
		if !in.Found || in.State.Handled != 7 {
			t.Errorf("step saw %+v (found %v)", in.State, in.Found)
		}
		return result(in.State, 1), nil
	})
	if err != nil || !ok {
		t.Fatalf("Apply = %v, %v", ok, err)
	}
	_, raw, err := s.StateRaw(st.Patient)
	if err != nil || len(raw) == 0 || raw[0] == '{' {
		t.Fatalf("state after the step: %q, %v; want the binary form", raw, err)
	}
	var walked engine.State
	if err := s.Walk(store.Walker{State: func(_ engine.PatientID, v []byte) error { return json.Unmarshal(v, &walked) }}); err != nil {
		t.Fatalf("Walk handed on a state that is not JSON: %v", err)
	}
	if walked.Handled != 8 || walked.Ready["energy"] != "usual" {
		t.Errorf("walked state %+v", walked)
	}
	s.Close()
	r, err := store.Check(path)
	if err != nil || len(r.Problems) > 0 {
		t.Fatalf("check: %v, %v", r.Problems, err)
	}
}

func FuzzDecodeState(f *testing.F) {
	good, _ := store.EncodeState(sampleState())
	old, _ := json.Marshal(sampleState())
	f.Add(good)
	f.Add(old)
	f.Add([]byte{0x01})
	f.Add(append([]byte{0x02, 0, 0, 0, 0, 0, 0, 0, 7}, good...)) // headed by a transcript head
	f.Add([]byte{0x02, 0, 0, 0, 0, 0, 0, 0, 7, 0x02})
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := store.DecodeState(raw)
		if err != nil {
			return
		}
		b, err := store.EncodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		// Compared as encodings: a JSON state's empty list ("checkins":
		// []) and the binary form's none are the same state.
		again, err := store.DecodeState(b)
		if err != nil {
			t.Fatalf("re-encoded state unreadable: %v", err)
		}
		if b2, err := store.EncodeState(again); err != nil || !bytes.Equal(b2, b) {
			t.Fatalf("re-encoded state reads as %+v, %v; want %+v", again, err, st)
		}
	})
}

func BenchmarkStateEncoding(b *testing.B) {
	st := sampleState()
	bin, _ := store.EncodeState(st)
	js, _ := json.Marshal(st)
	b.Run("binary/encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(bin)))
		for b.Loop() {
			store.EncodeState(st)
		}
	})
	b.Run("binary/decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(bin)))
		for b.Loop() {
			store.DecodeState(bin)
		}
	})
	b.Run("json/encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			json.Marshal(st)
		}
	})
	b.Run("json/decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			var x engine.State
			json.Unmarshal(js, &x)
		}
	})
}

// TestOlderSchemasAreMarkedCurrentAndNewerRefused: a file marked schema 2
// or 3 is upgraded to 5 on open; a file marked 6 is refused.
func TestOlderSchemasAreMarkedCurrentAndNewerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	s := open(t, path)
	s.Close()
	for _, old := range []byte{2, 3} {
		poison(t, path, "meta", []byte("schema"), []byte{0, 0, 0, 0, 0, 0, 0, old})
		s = open(t, path)
		s.Close()
		r, err := store.Check(path)
		if err != nil || r.Schema != store.SchemaVersion || store.SchemaVersion != 5 {
			t.Fatalf("schema after opening a schema %d file: %d, %v; want 5", old, r.Schema, err)
		}
	}
	poison(t, path, "meta", []byte("schema"), []byte{0, 0, 0, 0, 0, 0, 0, 6})
	if _, err := store.Open(path, store.Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, store.ErrSchema) {
		t.Fatalf("opening a schema 6 file: %v, want ErrSchema", err)
	}
}
