package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	gosync "sync"

	"golang.org/x/sys/unix"
)

// Under systemd, stderr is a stream into the journal, and every line lands at priority
// info unless it starts with a "<N>" prefix (systemd.exec's SyslogLevelPrefix=, on by
// default). journalStream adds that prefix, so `journalctl -p err` and alerting on the
// journal find seafbak's errors (found running the units under a real systemd:
// contrib/systemd/TRIAL.md).
type journalStream struct {
	mu gosync.Mutex
	w  io.Writer
}

// Syslog priorities journald reads from the prefix.
const (
	prioErr     = 3
	prioWarning = 4
	prioInfo    = 6
	prioDebug   = 7
)

// journalStderr returns stderr wrapped in a journalStream when the journal is what it
// writes to: $JOURNAL_STREAM names the stream's device and inode, and stderr must be
// that very file (not a pipe to something else that inherited the variable).
func journalStderr(stderr *os.File) io.Writer {
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" {
		return stderr
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(v, "%d:%d", &dev, &ino); err != nil {
		return stderr
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(stderr.Fd()), &st); err != nil || uint64(st.Dev) != dev || uint64(st.Ino) != ino {
		return stderr
	}
	return &journalStream{w: stderr}
}

// Write is a line of no stated priority: info, as the journal takes it without a prefix.
func (j *journalStream) Write(p []byte) (int, error) { return j.writeAt(prioInfo, p) }

// writeAt writes p, one or more lines, each with priority prio.
func (j *journalStream) writeAt(prio int, p []byte) (int, error) {
	prefix := fmt.Appendf(nil, "<%d>", prio)
	out := make([]byte, 0, len(p)+len(prefix)*2)
	start := true
	for _, b := range p {
		if start {
			out = append(out, prefix...)
		}
		out = append(out, b)
		start = b == '\n'
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// errorWriter is w for lines that are errors: prefixed <3> on the journal.
func errorWriter(w io.Writer) io.Writer {
	if j, ok := w.(*journalStream); ok {
		return priorityWriter{j, prioErr}
	}
	return w
}

type priorityWriter struct {
	j    *journalStream
	prio int
}

func (p priorityWriter) Write(b []byte) (int, error) { return p.j.writeAt(p.prio, b) }

// journalHandler gives each log record the priority of its level. The inner handler
// writes one record per Write to a levelWriter, which Handle points at the record's
// level first.
type journalHandler struct {
	inner slog.Handler
	w     *levelWriter
}

type levelWriter struct {
	mu   gosync.Mutex
	j    *journalStream
	prio int
}

func (l *levelWriter) Write(b []byte) (int, error) { return l.j.writeAt(l.prio, b) }

func (h journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prio = levelPriority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return journalHandler{h.inner.WithAttrs(as), h.w}
}

func (h journalHandler) WithGroup(name string) slog.Handler {
	return journalHandler{h.inner.WithGroup(name), h.w}
}

func levelPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return prioErr
	case l >= slog.LevelWarn:
		return prioWarning
	case l >= slog.LevelInfo:
		return prioInfo
	}
	return prioDebug
}
