package service_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/engine/enginetest"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// loginLink is what the test's StaffLogin hands out: a credential that
// must reach the asker's private chat and nowhere else.
const loginLink = "https://desk.example/login?t=SECRET-TOKEN"

// TestLoginLinkOnlyPrivately: /login puts the desk sign-in link in a
// Private message to the asker's own private chat, never in the chat it
// came from, never fanned out to the other staff destinations or the
// escalation contacts. From a shared staff chat, that chat is told once
// the link was delivered; when the person's private chat refuses (Telegram
// 403 "bot can't initiate conversation with a user"), the link is dropped
// (not kept, not retried, not forwarded), the chat is told how to get one,
// and no patient state or staff problem is made for the staff member.
func TestLoginLinkOnlyPrivately(t *testing.T) {
	neverStarted := fmt.Errorf("telegram: chat 42: %w: Forbidden: bot can't initiate conversation with a user", service.ErrUnreachable)
	cases := []struct {
		name      string
		channel   engine.PatientID // where /login was sent
		refuse    error            // the private chat's answer
		linkTo    string           // where the link must arrive ("" nowhere)
		groupSays string           // what the group is told ("" nothing)
	}{
		{name: "from the staff group", channel: "telegram:-100", linkTo: "telegram:42", groupSays: "sent to them in a private chat"},
		{name: "from the staff group, private chat never started", channel: "telegram:-100", refuse: neverStarted, groupSays: "open a private chat with the bot"},
		{name: "from the private chat", channel: "telegram:42", linkTo: "telegram:42"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := clock.NewFake(t0)
			obs := &staffObs{down: map[string]bool{}}
			st, err := store.Open(filepath.Join(t.TempDir(), "aftercare.db"), store.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			svc, err := service.New(service.Config{Engine: enginetest.New(), Store: st, Clock: clk, Observer: obs,
				StaffChannels:      []engine.PatientID{"telegram:-100", "webhook:sms"},
				EscalationContacts: []engine.PatientID{"telegram:777", "webhook:sms"},
				StaffLogin:         func(context.Context, string) (string, error) { return loginLink, nil }})
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.ReceiveStaff(ctx, service.StaffInbound{Staff: "telegram:42", Channel: tc.channel, Text: "/login", DedupeKey: "telegram:update:1"}); err != nil {
				t.Fatal(err)
			}
			// The link is queued once, marked private, to the person.
			q, _ := st.Outbox("telegram", 10)
			var queued []engine.Outbound
			for _, m := range q {
				if strings.Contains(m.Text, loginLink) {
					queued = append(queued, m)
				}
			}
			if len(queued) != 1 || !queued[0].Private || queued[0].Destination() != "telegram:42" {
				t.Fatalf("queued link messages %+v: want one Private message to telegram:42 (the store must keep Private)", queued)
			}
			s := &fakeSender{platform: "telegram", fail: map[string][]error{}}
			if tc.refuse != nil {
				s.fail["telegram:42"] = []error{tc.refuse, tc.refuse, tc.refuse}
			}
			d := svc.NewDispatcher(s, service.Pace{PerSecond: 1000})
			d.Clock = clk
			for range 3 { // the outcome notice is queued by the first pass
				if _, err := d.Pass(ctx); err != nil {
					t.Fatal(err)
				}
				clk.Add(10 * time.Minute) // past any retry: a kept link would be sent again
			}
			var linkTo []string
			var group []string
			for _, m := range s.got {
				if strings.Contains(m.Text, loginLink) || strings.Contains(m.Text, "SECRET") {
					linkTo = append(linkTo, string(m.Destination()))
				} else if m.Destination() == tc.channel && tc.channel != "telegram:42" {
					group = append(group, m.Text)
				}
			}
			want := []string{}
			if tc.linkTo != "" {
				want = []string{tc.linkTo}
			}
			if fmt.Sprint(linkTo) != fmt.Sprint(want) {
				t.Errorf("the link went to %v, want %v", linkTo, want)
			}
			switch {
			case tc.groupSays == "" && len(group) > 0:
				t.Errorf("the group was told %q, want nothing", group)
			case tc.groupSays != "" && (len(group) != 1 || !strings.Contains(group[0], tc.groupSays) || !strings.Contains(group[0], "telegram:42")):
				t.Errorf("the group was told %q, want one line naming telegram:42 with %q", group, tc.groupSays)
			}
			for _, pl := range []string{"telegram", "webhook"} {
				if left, _ := st.Outbox(pl, 10); len(left) != 0 {
					t.Errorf("%s outbox keeps %d messages after delivery: %+v", pl, len(left), left)
				}
			}
			if _, err := st.PatientRecord("telegram:42"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the staff member has a patient record after /login (err %v)", err)
			}
			if p := svc.StaffProblems(); len(p) != 0 {
				t.Errorf("a refused private chat was reported as a staff destination problem: %q", p)
			}
		})
	}
}
