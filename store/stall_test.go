package store

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aftercare-clinic/aftercare/engine"
)

// failsafe bounds waits for things that, with the code right, happen at
// once; it only keeps a broken build from hanging the whole test run.
const failsafe = 2 * time.Minute

func wait[T any](t *testing.T, ch <-chan T, what string) (T, bool) {
	t.Helper()
	select {
	case v := <-ch:
		return v, true
	case <-time.After(failsafe):
		t.Errorf("%s: still blocked after the failsafe of %v", what, failsafe)
		var zero T
		return zero, false
	}
}

// blockCommitter makes the committer busy with a write whose fn waits for
// release, and returns once that fn runs (so the next writes queue).
func blockCommitter(t *testing.T, s *Store) (release func(), done <-chan error) {
	t.Helper()
	started, rel := make(chan struct{}), make(chan struct{})
	d := make(chan error, 1)
	go func() {
		_, err := s.Apply(context.Background(), Step{Patient: "console:blocker"}, func(Input) (engine.Result, error) {
			close(started)
			<-rel
			return engine.Result{State: engine.State{Patient: "console:blocker"}}, nil
		})
		d <- err
	}()
	<-started
	return func() { close(rel) }, d
}

// TestQueuedWriteHonoursContext checks that a write waiting behind a busy
// committer returns ctx.Err() when its context ends and is then never run,
// while a write already taken into a group reports its real outcome.
func TestQueuedWriteHonoursContext(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// A write still in the queue gives up.
	release, blocked := blockCommitter(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{}, 1)
	res := make(chan error, 1)
	go func() {
		_, err := s.Apply(ctx, Step{Patient: "console:queued"}, func(Input) (engine.Result, error) {
			ran <- struct{}{}
			return engine.Result{State: engine.State{Patient: "console:queued"}}, nil
		})
		res <- err
	}()
	for s.commit.queue.Len() == 0 { // the condition: the write is queued
		runtime.Gosched()
	}
	cancel()
	err, ok := wait(t, res, "a queued write whose context ended")
	release()
	if _, ok2 := wait(t, blocked, "the blocking write"); !ok || !ok2 {
		t.FailNow()
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("queued write after cancel: err = %v, want context.Canceled", err)
	}
	// A write after it goes through the same queue, so once it is
	// committed the abandoned one was either run or dropped.
	if _, err := s.Apply(context.Background(), Step{Patient: "console:after"}, func(Input) (engine.Result, error) {
		return engine.Result{State: engine.State{Patient: "console:after"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
		t.Fatal("the abandoned write was run although its caller was told it failed")
	default:
	}
	if _, found, _ := s.State("console:queued"); found {
		t.Fatal("the abandoned write was committed")
	}

	// A write already in a group is not reported as failed when its
	// context ends meanwhile.
	ctx, cancel = context.WithCancel(context.Background())
	inFn, rel := make(chan struct{}), make(chan struct{})
	go func() {
		applied, err := s.Apply(ctx, Step{Patient: "console:taken"}, func(Input) (engine.Result, error) {
			close(inFn)
			<-rel
			return engine.Result{State: engine.State{Patient: "console:taken"}}, nil
		})
		if err == nil && !applied {
			err = errors.New("not applied")
		}
		res <- err
	}()
	<-inFn
	cancel()
	close(rel)
	if err, ok := wait(t, res, "a write taken into a group"); ok && err != nil {
		t.Fatalf("a write committed after its context ended was reported as %v", err)
	}
	if _, found, _ := s.State("console:taken"); !found {
		t.Fatal("the taken write was not committed")
	}
}

// TestSlowBackupReaderDoesNotBlockWrites starts a backup into a reader that
// takes only its first bytes, then writes enough to make the file grow
// (bbolt must remap it, which an open read transaction forbids); the writes
// must complete while the reader is still stalled.
func TestSlowBackupReaderDoesNotBlockWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "aftercare.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}

	pr, pw := io.Pipe()
	backupDone := make(chan error, 1)
	go func() {
		_, err := s.Backup(pw)
		pw.CloseWithError(err)
		backupDone <- err
	}()
	head := make([]byte, 16)
	if _, err := io.ReadFull(pr, head); err != nil {
		t.Fatal(err)
	}
	// The reader now stalls. Write four times the file's size several
	// times over: the mapping (at most twice the file) must grow.
	big := strings.Repeat("x", int(4*fi.Size())+1<<20)
	writes := make(chan error, 1)
	go func() {
		for range 4 {
			if err := s.Enqueue(engine.Outbound{To: "console:local", Kind: engine.KindNotice, Text: big}); err != nil {
				writes <- err
				return
			}
		}
		writes <- nil
	}()
	err, ok := wait(t, writes, "writes while a backup reader stalls")
	if ok && err != nil {
		t.Fatal(err)
	}
	if grown, _ := os.Stat(s.Path()); ok && grown.Size() <= fi.Size() {
		t.Fatalf("the file did not grow (%d -> %d bytes): the test proves nothing", fi.Size(), grown.Size())
	}
	// Now read the rest: it is a whole database, without the later writes.
	rest, rerr := io.ReadAll(pr)
	if !ok {
		wait(t, writes, "writes after the reader resumed")
	}
	if berr, _ := wait(t, backupDone, "backup"); berr != nil || rerr != nil {
		t.Fatalf("backup: %v / %v", berr, rerr)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, append(head, rest...), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(copyPath)
	if err != nil || !rep.OK() {
		t.Fatalf("the streamed backup is not a sound database: %v\n%s", err, rep)
	}
	c, err := Open(copyPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, _ := c.OutboxDepth(); n != 0 {
		t.Errorf("the backup holds %d messages written after it began, want 0", n)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "backup") {
			t.Errorf("temporary snapshot %s left behind", e.Name())
		}
	}
}
