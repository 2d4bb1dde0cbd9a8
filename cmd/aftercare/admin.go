package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aftercare-clinic/aftercare/clock"
	"github.com/aftercare-clinic/aftercare/engine"
	"github.com/aftercare-clinic/aftercare/service"
	"github.com/aftercare-clinic/aftercare/store"
)

// visit records a visit and prints a one-time invite:
//
//	aftercare visit [--config FILE] [--qr FILE.png] TREATMENT AREA... [acute] [child] [ago=2h] [tz=Zone] [lang=xx]
func (m *Main) visit(ctx context.Context, args []string) error {
	fs, cfgPath, err := m.flags("visit", nil, -1)
	if err != nil {
		return err
	}
	qrOut := fs.String("qr", "", "write a QR code PNG of the invite link to this file")
	if err := fs.Parse(args); err != nil {
		return &usageError{err.Error()}
	}
	cfg, err := m.loadClinic(fs, *cfgPath)
	if err != nil {
		return err
	}
	clk := m.clock()
	if _, err := parseCLIVisit(fs.Args(), clk.Now()); err != nil {
		return err
	}
	var resp inviteResponse
	err = m.withDB(ctx, cfg, func(st appStore) error {
		v, _ := service.ParseVisitArgs(fs.Args(), clk.Now())
		eng, err := buildEngine(cfg)
		if err != nil {
			return err
		}
		svc, err := service.New(service.Config{Engine: eng, Store: st, Clock: clk, StaffChannels: []engine.PatientID{engine.StaffAddress}})
		if err != nil {
			return err
		}
		inv, err := svc.CreateInvite(ctx, v, time.Duration(cfg.Invites.TTLDays)*24*time.Hour)
		if err != nil {
			return err
		}
		resp = newInviteResponse(inv, inviteLinks(func() string { return cfg.Invites.TelegramBotUsername }, cfg.Discord != nil))
		return nil
	})
	if errors.Is(err, errRunning) {
		b, aerr := adminCall(ctx, cfg, "POST", "/admin/visit", fs.Args())
		if aerr != nil {
			return aerr
		}
		err = json.Unmarshal(b, &resp)
	}
	if err != nil {
		return err
	}
	m.printInvite(cfg, resp)
	if *qrOut != "" {
		png, err := base64.StdEncoding.DecodeString(resp.QRPNG)
		if err != nil || len(png) == 0 {
			return errors.New("visit: no QR code could be made for this invite")
		}
		if err := os.WriteFile(*qrOut, png, 0o600); err != nil {
			return fmt.Errorf("visit: %w", err)
		}
		fmt.Fprintln(m.Stdout, "QR code written to", *qrOut)
	}
	return nil
}

// export writes a patient's record as JSON (check-ins as FHIR R4
// QuestionnaireResponses): aftercare export [--config FILE] PATIENT
func (m *Main) export(ctx context.Context, args []string) error {
	fs, cfgPath, err := m.flags("export", args, 1)
	if err != nil {
		return err
	}
	cfg, err := m.loadClinic(fs, *cfgPath)
	if err != nil {
		return err
	}
	id := engine.PatientID(fs.Arg(0))
	var out []byte
	err = m.withDB(ctx, cfg, func(st appStore) error {
		eng, err := buildEngine(cfg)
		if err != nil {
			return err
		}
		doc, err := exportPatient(st, eng.Protocol(), id, m.clock().Now())
		if err != nil {
			return err
		}
		if err := auditRead(ctx, st, m.clock().Now(), cliActor, id); err != nil {
			return err
		}
		out, err = json.MarshalIndent(doc, "", "  ")
		return err
	})
	if errors.Is(err, errRunning) {
		out, err = adminCall(ctx, cfg, "GET", "/admin/export?patient="+urlQuery(string(id)), nil)
	}
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("export: no patient %q (IDs look like telegram:123456 or discord:987...)", id)
	}
	if err != nil {
		return err
	}
	_, err = m.Stdout.Write(append(out, '\n'))
	return err
}

// backup writes a consistent copy of the database, directly or, while the
// bot runs, through its admin endpoint: aftercare backup [--config FILE] OUT
func (m *Main) backup(ctx context.Context, args []string) error {
	fs, cfgPath, err := m.flags("backup", args, 1)
	if err != nil {
		return err
	}
	cfg, err := m.loadClinic(fs, *cfgPath)
	if err != nil {
		return err
	}
	out := fs.Arg(0)
	if cfg.Store.Backend == "postgres" {
		return &ConfigError{Key: "store.backend", Msg: "the store is PostgreSQL: take backups with pg_dump (see the README); a clinic's data is its schema, " + orDefault(pgSchema(cfg), "public")}
	}
	err = m.withStore(cfg, func(st *store.Store) error {
		if err := auditRead(ctx, st, m.clock().Now(), cliActor, ""); err != nil {
			return err
		}
		return st.BackupFile(out)
	})
	if errors.Is(err, errRunning) {
		var resp *http.Response
		if resp, err = adminDo(ctx, cfg, "GET", "/admin/backup", nil, 0); err == nil {
			err = writeNew(out, resp.Body)
			resp.Body.Close()
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(m.Stdout, "backup written to", out)
	return nil
}

// cliActor is the audit trail's actor for reads the command line makes
// on the database directly (no bot running).
const cliActor = "cli"

// writeNew writes what r streams to a new file (mode 0600), removing the
// file when the stream breaks off, so a partial backup is never left.
func writeNew(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("backup: %w", err)
	}
	return f.Close()
}

// check verifies the database's integrity and prints a readable report:
// aftercare check [--config FILE] [FILE]
func (m *Main) check(args []string) error {
	fs, cfgPath, err := m.flags("check", args, -1)
	if err != nil {
		return err
	}
	path := ""
	if fs.NArg() == 1 {
		path = fs.Arg(0)
	} else {
		cfg, err := m.loadClinic(fs, *cfgPath)
		if err != nil {
			return err
		}
		path = dbPath(cfg)
	}
	rep, err := store.Check(path)
	if err != nil {
		return err
	}
	fmt.Fprint(m.Stdout, rep.String())
	if !rep.OK() {
		return errors.New("check: the database has problems (see above); restore a backup")
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (m *Main) clock() clock.Clock {
	if m.Clock != nil {
		return m.Clock
	}
	return clock.Real{}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", "?", "%3F").Replace(s)
}
