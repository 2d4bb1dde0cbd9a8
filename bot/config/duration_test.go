package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationUnmarshal(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string // substring of the error; "" for none
	}{
		{in: `"30s"`, want: 30 * time.Second},
		{in: `"250ms"`, want: 250 * time.Millisecond},
		{in: `"1m30s"`, want: 90 * time.Second},
		{in: `"0s"`, want: 0},
		{in: `30`, want: 30 * time.Second},
		{in: `1.5`, want: 1500 * time.Millisecond},
		{in: `0`, want: 0},
		{in: `"soon"`, wantErr: `invalid duration "soon"`},
		{in: `"30"`, wantErr: `invalid duration "30"`},
		{in: `true`, wantErr: "invalid duration true"},
		{in: `{}`, wantErr: "invalid duration {}"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tc.in), &d)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || time.Duration(d) != tc.want {
				t.Fatalf("got %v, %v; want %v", time.Duration(d), err, tc.want)
			}
		})
	}
}

func TestDurationMarshal(t *testing.T) {
	b, err := json.Marshal(Duration(30 * time.Second))
	if err != nil || string(b) != `"30s"` {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	var d Duration
	if err := json.Unmarshal(b, &d); err != nil || d != Duration(30*time.Second) {
		t.Fatalf("round trip = %v, %v", d, err)
	}
}
