package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/minio/minio-go/v7"

	"seafbak/config"
	"seafbak/internal/dbconn"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// The one table of exit codes, documented in the README. Commands return errors of a
// class; report turns them into a code and prints them, with the admin's next step.
const (
	exitOK      = 0
	exitFailed  = 1   // some library failed (sync, scan), is failed (status), or a check found problems
	exitCantRun = 2   // bad arguments or config, primary or state unreachable: nothing could be done
	exitSIGINT  = 130 // interrupted (Ctrl-C): unfinished libraries keep their previous head
	exitSIGTERM = 143 // stopped (SIGTERM, systemd): the same
)

// class is what kind of failure a command met, which decides its exit code.
type class int

const (
	classFailed  class = iota + 1 // the work ran and some of it failed
	classCantRun                  // the work could not start (arguments, config, connections)
)

// cliError is a command's error with its class. printed marks an error whose text the
// command already wrote (a per-library report), so report adds nothing.
type cliError struct {
	class   class
	err     error
	printed bool
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// cantRun marks err as stopping the command before it could do its work (exit 2).
func cantRun(err error) error { return &cliError{class: classCantRun, err: err} }

// failed marks err as the failure of work that ran (exit 1).
func failed(err error) error { return &cliError{class: classFailed, err: err} }

// usagef is a bad argument (exit 2).
func usagef(format string, args ...any) error {
	return &cliError{class: classCantRun, err: fmt.Errorf(format, args...)}
}

// reported is a failure whose details the command has already printed (exit 1).
func reported(what string) error {
	return &cliError{class: classFailed, err: errors.New(what), printed: true}
}

// interrupt records which signal cancelled the run.
type interrupt struct{ sig syscall.Signal }

func (i interrupt) Error() string { return "interrupted by " + sigName(i.sig) }

func sigName(s syscall.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

// errStoppedAsAsked is returned by a command whose normal way to stop is a signal
// (watch, under systemd): it exits 0, not 130 or 143.
var errStoppedAsAsked = errors.New("stopped by a signal, as asked")

// report prints err for command cmd and returns the exit code. An error caused by a
// signal exits 130 or 143 whatever the command made of it, unless the command says a
// signal is its normal stop.
func report(w io.Writer, ctx context.Context, cmd string, err error) int {
	return reportAs(w, ctx, cmd, err, false)
}

// reportAs is report, writing each message as a JSON log record (as --log-format json
// writes the logs) when asJSON: a log shipper then reads the final error too.
func reportAs(w io.Writer, ctx context.Context, cmd string, err error, asJSON bool) int {
	if errors.Is(err, errStoppedAsAsked) {
		return exitOK
	}
	var sig interrupt
	if cause := context.Cause(ctx); errors.As(cause, &sig) {
		msg := fmt.Sprintf("%v; %s", sig, interrupted(cmd))
		if asJSON {
			writeJSONError(w, cmd, msg, "")
		} else {
			fmt.Fprintf(w, "seafbak %s: %s\n", cmd, msg)
		}
		if sig.sig == syscall.SIGTERM {
			return exitSIGTERM
		}
		return exitSIGINT
	}
	if err == nil {
		return exitOK
	}
	code := exitFailed
	var ce *cliError
	if errors.As(err, &ce) {
		if ce.class == classCantRun {
			code = exitCantRun
		}
		if ce.printed {
			return code
		}
	}
	w = errorWriter(w)
	if asJSON {
		writeJSONError(w, cmd, err.Error(), hint(err))
		return code
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "seafbak %s: %s\n", cmd, line)
	}
	if h := hint(err); h != "" {
		fmt.Fprintf(w, "  hint: %s\n", h)
	}
	return code
}

// interrupted says what a command stopped by a signal left behind, and what to do.
func interrupted(cmd string) string {
	switch cmd {
	case "restore server":
		return "the databases may be half loaded: run seafbak restore server --yes again before starting Seafile"
	case "restore library":
		return "the files written so far stay; run the same restore again to finish it"
	case "dump":
		return "the unfinished dump set is not used (the last complete one is); run seafbak dump again"
	case "verify":
		return "verify changes nothing (libraries a --repair was syncing keep their previous backed-up head); run it again"
	case "status":
		return "status changes nothing; run it again"
	case "store copy":
		return "what was copied stays; run the same copy again to finish it"
	}
	return "libraries not finished keep their previous backed-up head"
}

// writeJSONError writes one record as slog's JSON handler would, with the command and
// the admin's next step as attributes.
func writeJSONError(w io.Writer, cmd, msg, hint string) {
	attrs := []any{"command", cmd}
	if hint != "" {
		attrs = append(attrs, "hint", hint)
	}
	slog.New(slog.NewJSONHandler(w, nil)).Error(msg, attrs...)
}

// hint is what the admin can do about a typed cause whose text does not say so. An
// ObjectError and ErrInvariant carry their advice in their text (status shows that text
// too), so they get none here.
func hint(err error) string {
	var oe *seafsync.ObjectError
	var ce *dbconn.ConnectError
	switch {
	case errors.As(err, &oe), errors.Is(err, seafsync.ErrInvariant):
		return ""
	case errors.Is(err, primary.ErrUnreachable):
		return "the primary did not answer; check its file server (primary.url) or data dir mount (primary.data_dir) and run again: nothing was recorded"
	case errors.Is(err, store.ErrLibraryDirMoved):
		return "the backup store, or a library's directory in it, was moved or deleted while seafbak wrote into it; leave the store in place while seafbak runs, and run again: " +
			"the libraries keep their previous backed-up head, and the next run re-checks what this one wrote"
	case errors.Is(err, store.ErrFlushFailed):
		return "the backup disk failed to write what this run copied (see the kernel log, dmesg); fix the disk and run again: " +
			"the libraries keep their previous backed-up head, and the next run re-checks what this one wrote"
	case errors.Is(err, store.ErrNoSpace):
		return "free space or inodes on the backup disk (df -h and df -i on backup.data_dir), or grow it, and run again: " +
			"the libraries keep their previous backed-up head, and what this run copied stays, so the next run fetches only the rest"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "a disk is full (the path above is on it): free space or inodes (df -h, df -i) and run again; " +
			"what was recorded before stays as it was"
	case errors.Is(err, seafsync.ErrRecordedHeadMissing):
		return "check that backup.data_dir (or backup.s3's buckets) is the store this state was written with, and mounted; " +
			"if that store lost objects, seafbak verify --repair <repo-id> fetches them again from the primary"
	case errors.Is(err, state.ErrFailedOver):
		return "this host is the primary now: stop seafbak's cron job, hook and watch here. If the failover was a test and the old primary still serves, remove that file to let backups run again"
	case dbconn.NoSuchTable(err):
		return "a table seafbak uses is not there: the backup's database needs Seafile's own schema loaded once (README, \"The backup's database\"), and primary.db must name the primary's seafile database (not ccnet's or seahub's)"
	case errors.As(err, &ce) && dbconn.AccessDenied(err):
		return fmt.Sprintf("the database refused seafbak's account: check the user and password in %s.db (or %s)", ce.What, map[string]string{"primary": config.EnvPrimaryPassword, "backup": config.EnvBackupPassword}[ce.What])
	case errors.As(err, &ce) && dbconn.ErrorNumber(err) == 0:
		return fmt.Sprintf("the database server did not answer: check the address (unix socket or host:port) in %s.db, and that the server is up", ce.What)
	case deniedByGrants(err):
		return "the database user lacks a privilege seafbak needs: give it the grants in the README's \"MySQL grants\" section, and run again"
	case errors.Is(err, state.ErrLocked):
		return "another seafbak is syncing this library; it was asked to read the primary's head again before it finishes, so this change is not lost. Wait for it with --lock-wait to see the result"
	}
	return s3Hint(err)
}

// s3Hint is the next step for an error of the S3 backup store (its text starts "s3
// store <endpoint>", and names the bucket): credentials refused, permission denied, a
// certificate not trusted, or a server that did not answer or kept failing after the
// retries. Libraries keep their previous head in every case: the store returns an
// error before anything is recorded.
func s3Hint(err error) string {
	if !strings.Contains(err.Error(), "s3 store ") {
		return ""
	}
	const kept = "; the libraries keep their previous backed-up head"
	code, status := s3Answer(err)
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var urlErr *url.Error
	var netErr *net.OpError
	switch {
	case code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId" || code == "XAdminUserNotFound" ||
		code == "InvalidToken" || code == "ExpiredToken" || code == "InvalidClientTokenId":
		return "the S3 server refused the credentials: check backup.s3.access_key and backup.s3.secret_key (or " +
			"SEAFBAK_S3_SECRET_KEY; with neither set, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials) " +
			"against the key on the server" + kept
	case code == "AuthorizationHeaderMalformed" || code == "IllegalLocationConstraintException":
		return "the S3 server expects another region: set backup.s3.region to the buckets' region" + kept
	case code == "AccessDenied" || code == "AllAccessDisabled":
		return "the S3 server knows the key but denied the request: allow it to list, read and write the three " +
			"buckets (s3:ListBucket, s3:GetObject, s3:PutObject, s3:AbortMultipartUpload; seafbak never deletes)" + kept
	case code == "NoSuchBucket":
		return "check backup.s3.commit_bucket, fs_bucket and block_bucket, or make the missing bucket with the server's tools" + kept
	case errors.As(err, &unknownCA), errors.As(err, &hostname):
		return "the S3 server's certificate is not trusted for backup.s3.endpoint: for a private CA set " +
			"backup.s3.ca_file to its PEM certificate" + kept
	case errors.Is(err, store.ErrS3Stalled):
		return "the S3 server (backup.s3.endpoint) stopped sending or taking bytes in the middle of a request: check its load and " +
			"the network to it, and run again" + kept
	case code == "SlowDown" || code == "SlowDownWrite" || code == "SlowDownRead" || code == "Throttling" ||
		code == "ThrottlingException" || code == "RequestLimitExceeded" || code == "RequestThrottled" || code == "TooManyRequests" ||
		status == 429 || status >= 500 || code == "" && (errors.As(err, &urlErr) || errors.As(err, &netErr)):
		return "the S3 server (backup.s3.endpoint) did not answer or kept failing after retries: check it is up " +
			"and reachable, and run again" + kept
	}
	return ""
}

// s3Answer is the S3 error code and HTTP status of err, if the S3 server answered: from
// minio-go's ErrorResponse when it is in the chain, else from the "(Code, HTTP n)" the
// store writes into its errors' text.
func s3Answer(err error) (code string, status int) {
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.Code != "" {
		return er.Code, er.StatusCode
	}
	if m := s3AnswerText.FindStringSubmatch(err.Error()); m != nil {
		status, _ = strconv.Atoi(m[2])
		return m[1], status
	}
	return "", 0
}

var s3AnswerText = regexp.MustCompile(`\(([A-Za-z][A-Za-z0-9.]*), HTTP ([1-5][0-9][0-9])\)`)

// commandName is kong's command path without its arguments ("restore library").
func commandName(path string) string {
	var words []string
	for _, w := range strings.Fields(path) {
		if strings.HasPrefix(w, "<") {
			continue
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// deniedByGrants: the database user lacks a privilege (a table, a column, a database).
func deniedByGrants(err error) bool {
	switch dbconn.ErrorNumber(err) {
	case dbconn.ErDBAccessDenied, dbconn.ErTableAccessDenied, dbconn.ErColumnAccessDenied:
		return true
	}
	return false
}

// setupError: err is a database set up short of what seafbak needs (schema, grants),
// the same for every library: the command could not run, however far it got.
func setupError(err error) bool { return dbconn.NoSuchTable(err) || deniedByGrants(err) }
