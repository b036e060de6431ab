// Package metrics turns seafbak's records into a Prometheus text-format file for
// node_exporter's textfile collector (--metrics-file PATH, or metrics.file in the
// config).
//
// Every command that writes it renders the whole file again from the state directory
// (one record per library, the last dump), so library metrics are as fresh as the
// state whichever command ran last, plus the metrics of its own run. The file is
// replaced atomically (temp file in the same directory, fsync, rename; mode 0644 so
// node_exporter can read it): a scrape sees the old file or the new one, never a mix.
//
// # Several commands, one file
//
// scan every five minutes, the change hook's sync, dump nightly and verify all write
// the same PATH. Library and dump metrics come from the state, which every command
// shares, so the last writer's are right for all. Run metrics (seafbak_run_*{command})
// are carried over: a writer reads the previous file back, keeps the seafbak_run_*
// samples of every other command and replaces its own command's. The read, render and
// rename happen under an flock of PATH's directory, so two commands finishing at once
// (a scan and a hook sync) cannot lose each other's run. One file rather than one per
// command, because node_exporter fails the whole textfile collection when two files
// hold the same series, and every command's file would hold the library series. A
// previous file that cannot be parsed (a hand edit) only loses the other commands'
// runs until they run again.
//
// seafbak_last_scan_timestamp_seconds is carried over the same way: it is the start of
// the last scan that compared every library's head on the primary with the backup
// (Run.ComparedAll), or of watch's last such comparison (Run.ComparedAt), whichever
// command writes the file later.
//
// # Metrics
//
// Per library (labels repo_id and name; deleted libraries keep only the first three):
//
//	seafbak_library_deleted                         gauge  1 if deleted on the primary (its backup stays)
//	seafbak_library_last_success_timestamp_seconds  gauge  last successful sync (0: never)
//	seafbak_library_last_attempt_timestamp_seconds  gauge  last sync attempt (0: never)
//	seafbak_library_current_timestamp_seconds       gauge  last time the backup was known to hold the primary's head (0: never)
//	seafbak_library_lag_seconds                     gauge  now - current_timestamp when the file was written (+Inf: never backed up)
//	seafbak_library_failed                          gauge  1 if the last attempt failed or the record is damaged
//	seafbak_library_holes                           gauge  objects the primary could not give, skipped under --force
//
// A library's last success moves only when its sync copies something or fixes a
// failure: scan does not sync a library that did not change, so an idle library's last
// success can be weeks old while its backup is perfectly current. Alerting on
// time() - last_success would page for every idle library. current_timestamp is what
// to alert on: for a library whose last attempt succeeded it is the later of its last
// success and the last scan (which found it unchanged, or synced it); for a failed one
// it stays at its last success (seafbak cannot tell when the primary changed after
// it). A damaged record (see state.DamagedError) shows as failed with current 0 and an
// empty name. lag_seconds is the same figure as seen when the file was written; it
// freezes if seafbak stops writing the file, while time() - current_timestamp keeps
// growing, so alert on the latter.
//
// Totals and the last dump:
//
//	seafbak_libraries{state}                  gauge  records by state, each library in one: synced, waiting (never backed up yet), with_holes, failed, deleted, damaged
//	seafbak_last_scan_timestamp_seconds       gauge  start of the last scan that compared every library with the primary (absent: none yet)
//	seafbak_last_dump_timestamp_seconds       gauge  when the last complete database dump finished (absent: none recorded)
//	seafbak_last_dump_bytes                   gauge  its size
//
// Per command's last run (label command: sync, scan, dump, verify, ...; one series per
// command, so cardinality stays at the number of commands):
//
//	seafbak_run_timestamp_seconds{command}    gauge  when it started
//	seafbak_run_duration_seconds{command}     gauge  how long it took
//	seafbak_run_exit_code{command}            gauge  its exit code (0 ok, 1 failed, 2 could not run; status --if-changed telling a change: 0)
//	seafbak_run_bytes{command}                gauge  bytes of objects it copied (or dumped)
//	seafbak_run_objects{command}              gauge  objects it copied (or checked)
//
// "synced" in seafbak_libraries means the last sync succeeded, from the state alone;
// whether the primary moved since is what current_timestamp tells.
//
// # Alerts
//
// Example Prometheus rules (scan runs every 5 minutes, dump nightly):
//
//	groups:
//	  - name: seafbak
//	    rules:
//	      - alert: SeafbakLibraryNotBackedUp
//	        # no sync or scan has confirmed this library's backup for 15 minutes
//	        expr: time() - seafbak_library_current_timestamp_seconds > 900
//	        annotations:
//	          summary: 'library {{ $labels.name }} ({{ $labels.repo_id }}) not backed up for {{ $value | humanizeDuration }}'
//	      - alert: SeafbakLibraryFailing
//	        expr: seafbak_library_failed == 1
//	        for: 15m
//	      - alert: SeafbakLibraryHoles
//	        # backed up with --force without objects the primary lacks: repair the primary
//	        expr: seafbak_library_holes > 0
//	      - alert: SeafbakScanNotRunning
//	        expr: time() - seafbak_last_scan_timestamp_seconds > 900 or absent(seafbak_last_scan_timestamp_seconds)
//	      - alert: SeafbakRunFailed
//	        expr: seafbak_run_exit_code != 0
//	      - alert: SeafbakDumpTooOld
//	        expr: time() - seafbak_last_dump_timestamp_seconds > 26 * 3600
//
// The library alert fires after three missed scans, for a library failing for 15
// minutes since its last success, and at once for a library never backed up (a first
// backup still copying too).
//
// # Cost
//
// Every write reads every state record and renders seven series per library: at
// 10 000 libraries about 1 s (a third reading the state, a third rendering) and a
// 7 MB file, on the project's 2-core VM (BenchmarkWrite10000).
package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"seafbak/internal/fsutil"
	"seafbak/state"
)

// Run is what one invocation of a seafbak command did, for the seafbak_run_* metrics.
type Run struct {
	Command  string // "sync", "scan", "dump", "verify", ...
	Start    time.Time
	Duration time.Duration
	ExitCode int
	Bytes    int64 // bytes of objects copied (or dumped)
	Objects  int64 // objects copied (or checked)
	// ComparedAll says the run listed the primary's libraries and compared every head
	// with the state, syncing what had changed (a scan that got past its listing, even
	// if some libraries failed): every library whose record is not failed held the
	// primary's head as of Start.
	ComparedAll bool
	// ComparedAt, if set with ComparedAll, is when that comparison started instead of
	// Start: watch compares every library again each minute, long after it started.
	ComparedAt time.Time
	// ChangeTold: the run's exit 1 told a change (status --if-changed: the health
	// changed, a recovery too), not a failure: ExitCode is written as 0, or an alert on
	// failed runs fired at every recovery.
	ChangeTold bool
}

// Snapshot is everything one metrics file is rendered from.
type Snapshot struct {
	Now       time.Time
	Libraries []state.Library
	// Damaged are the repo ids of records that could not be read (state.Dir.All).
	Damaged  []string
	LastDump *state.Dump // nil: none recorded
	// LastScan is the start of the last run that compared every library with the
	// primary (Run.ComparedAll); zero: none known.
	LastScan time.Time
	// Runs is the last run of each command, one per command.
	Runs []Run
}

// FileMode is the metrics file's mode: node_exporter runs as its own user.
const FileMode = 0o644

// lockWait bounds the wait for another seafbak writing the same file (milliseconds of
// work): a stuck holder must not hang a cron job.
var lockWait = 30 * time.Second

// Write renders the metrics of the state in st as of now, with run (nil: none) as its
// command's last run, and replaces path atomically. The other commands' runs and the
// last scan are carried over from the file path held before.
func Write(path string, st *state.Dir, run *Run, now time.Time) error {
	if path == "" {
		return errors.New("metrics: no metrics file configured")
	}
	if !strings.HasSuffix(path, ".prom") {
		// Anything else would be written faithfully and never scraped.
		return fmt.Errorf("metrics: %s: the name must end in .prom, the only files node_exporter's textfile collector reads", path)
	}
	if run != nil {
		if run.Command == "" {
			return errors.New("metrics: run without a command name")
		}
		r := *run
		if r.Start.IsZero() {
			r.Start = now.Add(-r.Duration)
		}
		run = &r
	}
	dir := filepath.Dir(path)
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("metrics: cannot write %s: %w", path, err)
	}
	defer unlock()

	snap, err := Collect(st, now)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	prevRuns, prevScan := readPrevious(path)
	snap.LastScan = prevScan
	if run != nil && run.ComparedAll {
		at := run.Start
		if !run.ComparedAt.IsZero() {
			at = run.ComparedAt
		}
		if at.After(snap.LastScan) {
			snap.LastScan = at
		}
	}
	for _, r := range prevRuns {
		if run == nil || r.Command != run.Command {
			snap.Runs = append(snap.Runs, r)
		}
	}
	if run != nil {
		snap.Runs = append(snap.Runs, *run)
	}

	var buf bytes.Buffer
	if err := Render(&buf, snap); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, buf.Bytes(), FileMode); err != nil {
		return fmt.Errorf("metrics: cannot write %s: %w", path, err)
	}
	return nil
}

// Collect reads the state's records and last dump into a Snapshot (without runs).
func Collect(st *state.Dir, now time.Time) (*Snapshot, error) {
	recs, damaged, err := st.All()
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Now: now, Libraries: recs}
	for _, de := range damaged {
		snap.Damaged = append(snap.Damaged, de.RepoID)
	}
	// A damaged dump record says nothing of the libraries: their metrics are written,
	// and the dump's gauges left out (an alert on their absence or age fires, as it
	// should: seafbak dump rewrites the record).
	snap.LastDump, _ = st.LastDump()
	return snap, nil
}

// lockDir takes an flock of dir (flock(2) works on a directory's descriptor), leaving
// nothing behind in node_exporter's textfile directory. It fails at once with a clear
// error if dir is missing or not a directory.
func lockDir(dir string) (unlock func(), err error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return nil, fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockWait)
	delay := 5 * time.Millisecond
	for {
		err := fsutil.TryFlock(int(f.Fd()))
		if err == nil {
			return func() { fsutil.Unflock(int(f.Fd())); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: another process has held it for %s", dir, lockWait)
		}
		time.Sleep(delay)
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// Metric names.
const (
	nLibDeleted     = "seafbak_library_deleted"
	nLibLastSuccess = "seafbak_library_last_success_timestamp_seconds"
	nLibLastAttempt = "seafbak_library_last_attempt_timestamp_seconds"
	nLibCurrent     = "seafbak_library_current_timestamp_seconds"
	nLibLag         = "seafbak_library_lag_seconds"
	nLibFailed      = "seafbak_library_failed"
	nLibHoles       = "seafbak_library_holes"
	nLibraries      = "seafbak_libraries"
	nLastScan       = "seafbak_last_scan_timestamp_seconds"
	nLastDump       = "seafbak_last_dump_timestamp_seconds"
	nLastDumpBytes  = "seafbak_last_dump_bytes"
	nRunTimestamp   = "seafbak_run_timestamp_seconds"
	nRunDuration    = "seafbak_run_duration_seconds"
	nRunExitCode    = "seafbak_run_exit_code"
	nRunBytes       = "seafbak_run_bytes"
	nRunObjects     = "seafbak_run_objects"
)

// Library states of seafbak_libraries, each library in exactly one.
const (
	StateSynced    = "synced"
	StateWaiting   = "waiting"
	StateWithHoles = "with_holes"
	StateFailed    = "failed"
	StateDeleted   = "deleted"
	StateDamaged   = "damaged"
)

var libStates = []string{StateSynced, StateWaiting, StateWithHoles, StateFailed, StateDeleted, StateDamaged}

// StateOf is the seafbak_libraries state of a (readable) record.
func StateOf(rec *state.Library) string {
	switch {
	case rec.Deleted != nil:
		return StateDeleted
	case rec.Failed():
		return StateFailed
	case len(rec.Holes) > 0:
		return StateWithHoles
	case rec.Head == "":
		return StateWaiting
	default:
		return StateSynced
	}
}

var (
	libLabels = []string{"repo_id", "name"}
	runLabels = []string{"command"}

	descs = map[string]*prometheus.Desc{
		nLibDeleted:     prometheus.NewDesc(nLibDeleted, "1 if the library was deleted on the primary (its backup stays).", libLabels, nil),
		nLibLastSuccess: prometheus.NewDesc(nLibLastSuccess, "Unix time of the library's last successful sync, 0 if never. Does not move while the library does not change: alert on seafbak_library_current_timestamp_seconds.", libLabels, nil),
		nLibLastAttempt: prometheus.NewDesc(nLibLastAttempt, "Unix time of the library's last sync attempt, 0 if never.", libLabels, nil),
		nLibCurrent:     prometheus.NewDesc(nLibCurrent, "Unix time the backup was last known to hold the library's head on the primary (its last success, or a later scan if its last attempt succeeded), 0 if never.", libLabels, nil),
		nLibLag:         prometheus.NewDesc(nLibLag, "Seconds since seafbak_library_current_timestamp_seconds when this file was written, +Inf if never backed up.", libLabels, nil),
		nLibFailed:      prometheus.NewDesc(nLibFailed, "1 if the library's last sync attempt failed or its state record is damaged.", libLabels, nil),
		nLibHoles:       prometheus.NewDesc(nLibHoles, "Objects of the library's history the backup lacks because the primary could not give them (sync --force).", libLabels, nil),
		nLibraries:      prometheus.NewDesc(nLibraries, "Libraries in seafbak's state, by state (each in one): synced, waiting, with_holes, failed, deleted, damaged.", []string{"state"}, nil),
		nLastScan:       prometheus.NewDesc(nLastScan, "Unix time the last scan that compared every library with the primary started.", nil, nil),
		nLastDump:       prometheus.NewDesc(nLastDump, "Unix time the last complete database dump finished.", nil, nil),
		nLastDumpBytes:  prometheus.NewDesc(nLastDumpBytes, "Size of the last complete database dump in bytes.", nil, nil),
		nRunTimestamp:   prometheus.NewDesc(nRunTimestamp, "Unix time the command's last run started.", runLabels, nil),
		nRunDuration:    prometheus.NewDesc(nRunDuration, "How long the command's last run took, in seconds.", runLabels, nil),
		nRunExitCode:    prometheus.NewDesc(nRunExitCode, "Exit code of the command's last run: 0 ok, 1 failed, 2 could not run (status --if-changed telling a change of health: 0).", runLabels, nil),
		nRunBytes:       prometheus.NewDesc(nRunBytes, "Bytes of objects the command's last run copied (or dumped).", runLabels, nil),
		nRunObjects:     prometheus.NewDesc(nRunObjects, "Objects the command's last run copied (or checked).", runLabels, nil),
	}
)

// Render writes snap in Prometheus text format (version 0.0.4, what node_exporter's
// textfile collector reads), through a client_golang registry, families sorted by name
// and samples by labels.
func Render(w io.Writer, snap *Snapshot) error {
	// Not a pedantic registry: its extra check (each metric against its Desc) costs a
	// fifth of the time at 10 000 libraries and guards only this file's fixed Descs.
	// Gather still refuses a series collected twice, which node_exporter would reject.
	reg := prometheus.NewRegistry()
	if err := reg.Register(collector{snap}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// collector emits a Snapshot as constant metrics.
type collector struct{ s *Snapshot }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(name string, v float64, labels ...string) {
		for i, l := range labels {
			labels[i] = strings.ToValidUTF8(l, "\uFFFD") // a label value must be UTF-8
		}
		ch <- prometheus.MustNewConstMetric(descs[name], prometheus.GaugeValue, v, labels...)
	}
	counts := map[string]int{}
	for i := range s.Libraries {
		rec := &s.Libraries[i]
		st := StateOf(rec)
		counts[st]++
		id, name := rec.ID, rec.Name
		gauge(nLibDeleted, bool01(st == StateDeleted), id, name)
		gauge(nLibLastSuccess, seconds(rec.LastSuccess), id, name)
		gauge(nLibLastAttempt, seconds(rec.LastAttempt), id, name)
		if st == StateDeleted {
			continue // not expected to follow the primary any more
		}
		current := rec.LastSuccess
		if !rec.Failed() && !current.IsZero() && s.LastScan.After(current) {
			current = s.LastScan
		}
		gauge(nLibCurrent, seconds(current), id, name)
		gauge(nLibLag, lag(s.Now, current), id, name)
		gauge(nLibFailed, bool01(rec.Failed()), id, name)
		gauge(nLibHoles, float64(len(rec.Holes)), id, name)
	}
	for _, id := range s.Damaged {
		// Nothing in the record can be trusted, not even its name: the library is
		// failed until the admin moves the record aside.
		counts[StateDamaged]++
		gauge(nLibCurrent, 0, id, "")
		gauge(nLibLag, math.Inf(1), id, "")
		gauge(nLibFailed, 1, id, "")
	}
	for _, st := range libStates {
		gauge(nLibraries, float64(counts[st]), st)
	}
	if !s.LastScan.IsZero() {
		gauge(nLastScan, seconds(s.LastScan))
	}
	if d := s.LastDump; d != nil {
		gauge(nLastDump, seconds(d.Finished))
		gauge(nLastDumpBytes, float64(d.Bytes))
	}
	for _, r := range s.Runs {
		gauge(nRunTimestamp, seconds(r.Start), r.Command)
		gauge(nRunDuration, r.Duration.Seconds(), r.Command)
		gauge(nRunExitCode, float64(r.ExitCode), r.Command)
		gauge(nRunBytes, float64(r.Bytes), r.Command)
		gauge(nRunObjects, float64(r.Objects), r.Command)
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// seconds is t in seconds since the epoch, 0 for the zero time.
func seconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func lag(now, current time.Time) float64 {
	if current.IsZero() {
		return math.Inf(1)
	}
	return max(now.Sub(current).Seconds(), 0) // a clock step back is not negative lag
}

// readPrevious reads back, from the file a previous writer left, each command's last
// run and the last scan. Anything wrong with it (missing, unparseable, a sample without
// its command) only loses what it held: the runs come back when their commands run.
func readPrevious(path string) (runs []Run, lastScan time.Time) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}
	}
	if err != nil {
		return nil, time.Time{}
	}
	defer f.Close()
	// Only the run and last scan lines are parsed: the per-library lines, most of a
	// large file, are rendered afresh anyway. The text format is line based, and every
	// HELP, TYPE and sample line names its metric first.
	var keep bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		rest := line
		for _, p := range [][]byte{[]byte("# HELP "), []byte("# TYPE ")} {
			if r, ok := bytes.CutPrefix(line, p); ok {
				rest = r
			}
		}
		if bytes.HasPrefix(rest, []byte("seafbak_run_")) || bytes.HasPrefix(rest, []byte(nLastScan)) {
			keep.Write(line)
			keep.WriteByte('\n')
		}
	}
	if sc.Err() != nil {
		return nil, time.Time{}
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(&keep)
	if err != nil {
		return nil, time.Time{}
	}
	if mf := mfs[nLastScan]; mf != nil && len(mf.GetMetric()) == 1 {
		if v := gaugeValue(mf.GetMetric()[0]); v > 0 {
			lastScan = fromUnix(v)
		}
	}
	byCmd := map[string]*Run{}
	set := func(name string, apply func(r *Run, v float64)) {
		mf := mfs[name]
		if mf == nil || mf.GetType() != dto.MetricType_GAUGE {
			return
		}
		for _, m := range mf.GetMetric() {
			lp := m.GetLabel()
			if len(lp) != 1 || lp[0].GetName() != "command" || lp[0].GetValue() == "" {
				continue
			}
			cmd := lp[0].GetValue()
			r := byCmd[cmd]
			if r == nil {
				r = &Run{Command: cmd}
				byCmd[cmd] = r
			}
			apply(r, gaugeValue(m))
		}
	}
	set(nRunTimestamp, func(r *Run, v float64) { r.Start = fromUnix(v) })
	set(nRunDuration, func(r *Run, v float64) { r.Duration = time.Duration(v * float64(time.Second)) })
	set(nRunExitCode, func(r *Run, v float64) { r.ExitCode = int(v) })
	set(nRunBytes, func(r *Run, v float64) { r.Bytes = int64(v) })
	set(nRunObjects, func(r *Run, v float64) { r.Objects = int64(v) })
	for _, r := range byCmd {
		if r.Start.IsZero() {
			continue // not a run this package wrote
		}
		runs = append(runs, *r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Command < runs[j].Command })
	return runs, lastScan
}

func gaugeValue(m *dto.Metric) float64 {
	v := m.GetGauge().GetValue()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// fromUnix is the time of v seconds since the epoch, to the microsecond (what a float64
// of today's times holds).
func fromUnix(v float64) time.Time {
	if v <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(math.Round(v * 1e6)))
}
