package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"seafbak/sync/store"
)

// A failed flush of the backup store exits 1 and tells the admin to look at the disk.
// A library directory moved away under a run is no disk failure: its own hint.
func TestReportLibraryDirectoryMoved(t *testing.T) {
	err := failed(fmt.Errorf("sync 7b89d49b-5c5c-4f42-8ded-940c84a3e206: %w: backup store: /srv/storage/blocks/7b89d49b-5c5c-4f42-8ded-940c84a3e206: %w",
		store.ErrFlushFailed, store.ErrLibraryDirMoved))
	var out bytes.Buffer
	if code := report(&out, context.Background(), "sync", err); code != exitFailed {
		t.Fatalf("exit code %d, want %d", code, exitFailed)
	}
	if !strings.Contains(out.String(), "hint: the backup store, or a library's directory in it, was moved or deleted") {
		t.Fatalf("no hint:\n%s", out.String())
	}
}

func TestReportFlushFailure(t *testing.T) {
	err := failed(fmt.Errorf("sync 7b89d49b-5c5c-4f42-8ded-940c84a3e206: %w: backup store: syncfs /srv: input/output error", store.ErrFlushFailed))
	var out bytes.Buffer
	if code := report(&out, context.Background(), "scan", err); code != exitFailed {
		t.Fatalf("exit code %d, want %d", code, exitFailed)
	}
	if !strings.Contains(out.String(), "hint: the backup disk failed to write") {
		t.Fatalf("no hint:\n%s", out.String())
	}
}

// A command stopped by a signal says what it left behind in its own terms: a failover
// stopped half way needs its rerun with --yes, not the sync's "previous head".
func TestInterruptedSaysWhatTheCommandLeft(t *testing.T) {
	for cmd, want := range map[string]string{
		"restore server":  "restore server --yes again",
		"restore library": "run the same restore again",
		"dump":            "run seafbak dump again",
		"sync":            "keep their previous backed-up head",
		"verify":          "verify changes nothing",
		"status":          "status changes nothing",
		"store copy":      "run the same copy again",
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(interrupt{sig: syscall.SIGINT})
		var out strings.Builder
		if code := report(&out, ctx, cmd, context.Canceled); code != exitSIGINT || !strings.Contains(out.String(), want) {
			t.Errorf("%s: %d %q, want %q", cmd, code, out.String(), want)
		}
	}
}

// The S3 store's failures that may go away get the same hint however the server words
// them: a throttling code or status, or a request whose bytes stopped moving.
func TestS3HintForThrottlingAndStalls(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("s3 store http://s3:9000: put b/k: Please reduce your request rate. (TooManyRequests, HTTP 429)"), "kept failing after retries"},
		{fmt.Errorf("s3 store http://s3:9000: put b/k: Rate exceeded (ThrottlingException, HTTP 400)"), "kept failing after retries"},
		{fmt.Errorf("s3 store http://s3:9000: get b/k: %w for 1m0s", store.ErrS3Stalled), "stopped sending or taking bytes"},
		{fmt.Errorf("s3 store http://s3:9000: put b/k: Access Denied. (AccessDenied, HTTP 403)"), "s3:AbortMultipartUpload"},
	} {
		if got := hint(c.err); !strings.Contains(got, c.want) {
			t.Errorf("%v: hint %q, want %q", c.err, got, c.want)
		}
	}
}
