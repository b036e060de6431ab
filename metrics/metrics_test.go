package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"seafbak/state"
)

func repoID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

func head(i int) string { return fmt.Sprintf("%040x", i) }

// now is when the tests' files are written.
var now = time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)

// Libraries of the test state, one per state.
var (
	idSynced  = repoID(1) // synced a week ago, unchanged since: idle, not behind
	idFailed  = repoID(2) // last success an hour ago, failing since
	idHoles   = repoID(3) // synced with --force two minutes ago, 2 holes
	idDeleted = repoID(4) // deleted on the primary yesterday
	idWaiting = repoID(5) // first sync never finished
	idDamaged = repoID(6) // record cannot be parsed
	idNever   = repoID(7) // first sync failed: never backed up
)

func testState(t *testing.T) *state.Dir {
	t.Helper()
	st, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	deleted := now.Add(-24 * time.Hour)
	hole := func(i int) state.Hole {
		return state.Hole{Kind: "block", ID: head(100 + i), Path: "/a.txt", Commit: head(3), Error: "missing on the primary", FirstSeen: now.Add(-time.Hour)}
	}
	for _, rec := range []state.Library{
		{ID: idSynced, Name: "Photos", Head: head(1), LastAttempt: now.Add(-7 * 24 * time.Hour), LastSuccess: now.Add(-7 * 24 * time.Hour)},
		{ID: idFailed, Name: `Q"uoted\ name` + "\nline", Head: head(2), LastAttempt: now.Add(-time.Minute), LastSuccess: now.Add(-time.Hour), LastError: "primary unreachable"},
		{ID: idHoles, Name: "Docs", Head: head(3), LastAttempt: now.Add(-2 * time.Minute), LastSuccess: now.Add(-2 * time.Minute), Holes: []state.Hole{hole(1), hole(2)}},
		{ID: idDeleted, Name: "Old", Head: head(4), LastAttempt: deleted, LastSuccess: now.Add(-48 * time.Hour), Deleted: &deleted},
		{ID: idWaiting, Name: "Big", LastAttempt: now.Add(-3 * time.Minute)},
		{ID: idNever, Name: "Broken", LastAttempt: now.Add(-4 * time.Minute), LastError: "missing on the primary"},
	} {
		if err := st.Save(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(st.Root(), "libraries", idDamaged+".json"), []byte("{not json"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveDump(state.Dump{Set: "2026-11-25T023000Z", Dir: "/var/backups/seafbak/x", Finished: now.Add(-12 * time.Hour), Bytes: 123456, Roles: []string{"ccnet", "seafile", "seahub"}}); err != nil {
		t.Fatal(err)
	}
	return st
}

// parse reads a metrics file the way node_exporter does (strict names), and checks it
// as promtool check metrics does (promlint).
func parse(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, data)
	}
	problems, err := promlint.New(bytes.NewReader(data)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("promlint: %s: %s", pr.Metric, pr.Text)
	}
	for name, mf := range mfs {
		if mf.GetHelp() == "" || mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s: help %q type %v", name, mf.GetHelp(), mf.GetType())
		}
	}
	return mfs
}

// value is the sample of name whose labels are exactly labels (name=value pairs); ok
// is false if there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	for _, m := range mfs[name].GetMetric() {
		lp := m.GetLabel()
		if len(lp)*2 != len(labels) {
			continue
		}
		match := true
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range lp {
				found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			match = match && found
		}
		if match {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func want(t *testing.T, mfs map[string]*dto.MetricFamily, v float64, name string, labels ...string) {
	t.Helper()
	got, ok := value(mfs, name, labels...)
	if !ok {
		t.Errorf("%s%v: missing", name, labels)
		return
	}
	if got != v && !(math.IsInf(v, 1) && math.IsInf(got, 1)) && math.Abs(got-v) > 1e-3 {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

func absent(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) {
	t.Helper()
	if got, ok := value(mfs, name, labels...); ok {
		t.Errorf("%s%v = %v, want absent", name, labels, got)
	}
}

func ts(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func lib(id, name string) []string { return []string{"repo_id", id, "name", name} }

func TestWriteAndParse(t *testing.T) {
	st := testState(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "seafbak.prom")
	scanStart := now.Add(-4 * time.Minute)
	run := &Run{Command: "scan", Start: scanStart, Duration: 1500 * time.Millisecond, ExitCode: 1, Bytes: 4096, Objects: 12, ComparedAll: true}
	if err := Write(path, st, run, now); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, path)

	// The idle library: last success a week ago, but the scan found it current.
	synced := lib(idSynced, "Photos")
	want(t, mfs, ts(now.Add(-7*24*time.Hour)), "seafbak_library_last_success_timestamp_seconds", synced...)
	want(t, mfs, ts(scanStart), "seafbak_library_current_timestamp_seconds", synced...)
	want(t, mfs, 240, "seafbak_library_lag_seconds", synced...)
	want(t, mfs, 0, "seafbak_library_failed", synced...)
	want(t, mfs, 0, "seafbak_library_holes", synced...)
	want(t, mfs, 0, "seafbak_library_deleted", synced...)

	// Failed: counts from its last success, whatever the scan.
	failed := lib(idFailed, `Q"uoted\ name`+"\nline")
	want(t, mfs, 1, "seafbak_library_failed", failed...)
	want(t, mfs, ts(now.Add(-time.Hour)), "seafbak_library_current_timestamp_seconds", failed...)
	want(t, mfs, 3600, "seafbak_library_lag_seconds", failed...)
	want(t, mfs, ts(now.Add(-time.Minute)), "seafbak_library_last_attempt_timestamp_seconds", failed...)

	// With holes: synced after the scan started, so current is its own success.
	holes := lib(idHoles, "Docs")
	want(t, mfs, 2, "seafbak_library_holes", holes...)
	want(t, mfs, 0, "seafbak_library_failed", holes...)
	want(t, mfs, 120, "seafbak_library_lag_seconds", holes...)

	// Deleted: kept, but not expected to follow the primary.
	deleted := lib(idDeleted, "Old")
	want(t, mfs, 1, "seafbak_library_deleted", deleted...)
	want(t, mfs, ts(now.Add(-48*time.Hour)), "seafbak_library_last_success_timestamp_seconds", deleted...)
	for _, n := range []string{"seafbak_library_lag_seconds", "seafbak_library_current_timestamp_seconds", "seafbak_library_failed", "seafbak_library_holes"} {
		absent(t, mfs, n, deleted...)
	}

	// Never backed up: infinitely behind, whether still trying or failed.
	for _, l := range [][]string{lib(idWaiting, "Big"), lib(idNever, "Broken"), lib(idDamaged, "")} {
		want(t, mfs, math.Inf(1), "seafbak_library_lag_seconds", l...)
		want(t, mfs, 0, "seafbak_library_current_timestamp_seconds", l...)
	}
	want(t, mfs, 0, "seafbak_library_failed", lib(idWaiting, "Big")...)
	want(t, mfs, 1, "seafbak_library_failed", lib(idNever, "Broken")...)
	want(t, mfs, 1, "seafbak_library_failed", lib(idDamaged, "")...)

	for st, n := range map[string]float64{"synced": 1, "waiting": 1, "with_holes": 1, "failed": 2, "deleted": 1, "damaged": 1} {
		want(t, mfs, n, "seafbak_libraries", "state", st)
	}
	want(t, mfs, ts(scanStart), "seafbak_last_scan_timestamp_seconds")
	want(t, mfs, ts(now.Add(-12*time.Hour)), "seafbak_last_dump_timestamp_seconds")
	want(t, mfs, 123456, "seafbak_last_dump_bytes")

	scan := []string{"command", "scan"}
	want(t, mfs, ts(scanStart), "seafbak_run_timestamp_seconds", scan...)
	want(t, mfs, 1.5, "seafbak_run_duration_seconds", scan...)
	want(t, mfs, 1, "seafbak_run_exit_code", scan...)
	want(t, mfs, 4096, "seafbak_run_bytes", scan...)
	want(t, mfs, 12, "seafbak_run_objects", scan...)

	// Replaced atomically: the file alone, readable by node_exporter.
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	assertOnly(t, dir, "seafbak.prom")
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %q, want %q (temp files left?)", dir, got, names)
	}
}

// Several commands write the same file: each keeps the others' last runs, and the last
// scan outlives the commands that write after it.
func TestCommandsShareTheFile(t *testing.T) {
	st := testState(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "seafbak.prom")
	scanStart := now.Add(-4 * time.Minute)
	steps := []struct {
		run *Run
		at  time.Time
	}{
		{&Run{Command: "scan", Start: scanStart, Duration: time.Second, ComparedAll: true}, now},
		{&Run{Command: "dump", Start: now.Add(-time.Minute), Duration: 30 * time.Second, Bytes: 999}, now.Add(time.Minute)},
		{&Run{Command: "sync", Start: now.Add(2 * time.Minute), Duration: time.Second, ExitCode: 1, Objects: 3}, now.Add(3 * time.Minute)},
		// A scan that could not list the primary: its run replaces the last one, but it
		// vouches for no library.
		{&Run{Command: "scan", Start: now.Add(4 * time.Minute), Duration: time.Second, ExitCode: 2}, now.Add(5 * time.Minute)},
		{nil, now.Add(6 * time.Minute)}, // status, say: no run of its own
	}
	for _, s := range steps {
		if err := Write(path, st, s.run, s.at); err != nil {
			t.Fatal(err)
		}
	}
	mfs := parse(t, path)
	want(t, mfs, ts(now.Add(4*time.Minute)), "seafbak_run_timestamp_seconds", "command", "scan")
	want(t, mfs, 2, "seafbak_run_exit_code", "command", "scan")
	want(t, mfs, ts(now.Add(-time.Minute)), "seafbak_run_timestamp_seconds", "command", "dump")
	want(t, mfs, 30, "seafbak_run_duration_seconds", "command", "dump")
	want(t, mfs, 999, "seafbak_run_bytes", "command", "dump")
	want(t, mfs, 1, "seafbak_run_exit_code", "command", "sync")
	want(t, mfs, 3, "seafbak_run_objects", "command", "sync")
	if n := len(mfs["seafbak_run_exit_code"].GetMetric()); n != 3 {
		t.Errorf("%d runs, want 3 (one per command)", n)
	}
	want(t, mfs, ts(scanStart), "seafbak_last_scan_timestamp_seconds")
	want(t, mfs, 600, "seafbak_library_lag_seconds", lib(idSynced, "Photos")...)
	assertOnly(t, dir, "seafbak.prom")
}

// A watch's comparison of every head counts as a scan's at its own start, not at the
// watch's Start: the idle library is current as of the last comparison while watch
// runs for days, and a later rewrite without one keeps it.
func TestWatchComparedAt(t *testing.T) {
	st := testState(t)
	path := filepath.Join(t.TempDir(), "seafbak.prom")
	watchStart := now.Add(-72 * time.Hour)
	compared := now.Add(-time.Minute)
	run := &Run{Command: "watch", Start: watchStart, Duration: 72 * time.Hour, ComparedAll: true, ComparedAt: compared}
	if err := Write(path, st, run, now); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, path)
	want(t, mfs, ts(compared), "seafbak_last_scan_timestamp_seconds")
	want(t, mfs, ts(compared), "seafbak_library_current_timestamp_seconds", lib(idSynced, "Photos")...)
	want(t, mfs, 60, "seafbak_library_lag_seconds", lib(idSynced, "Photos")...)
	want(t, mfs, ts(watchStart), "seafbak_run_timestamp_seconds", "command", "watch")
	// watch's last write, at exit, has no comparison of its own.
	run = &Run{Command: "watch", Start: watchStart, Duration: 72*time.Hour + time.Minute}
	if err := Write(path, st, run, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	want(t, parse(t, path), ts(compared), "seafbak_last_scan_timestamp_seconds")
}

// Commands finishing at once do not lose each other's runs.
func TestConcurrentWriters(t *testing.T) {
	st := testState(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "seafbak.prom")
	cmds := []string{"sync", "scan", "dump", "verify", "restore"}
	// A scrape while they write sees a whole file, the old one or the new one.
	stop := make(chan struct{})
	readerDone := make(chan int)
	go func() {
		reads := 0
		defer func() { readerDone <- reads }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			data, err := os.ReadFile(path)
			if err != nil {
				continue // not written yet
			}
			reads++
			p := expfmt.NewTextParser(model.LegacyValidation)
			mfs, err := p.TextToMetricFamilies(bytes.NewReader(data))
			if err != nil || mfs["seafbak_run_exit_code"] == nil || mfs["seafbak_libraries"] == nil {
				t.Errorf("a reader saw a partial file (%v):\n%s", err, data)
				return
			}
		}
	}()
	var wg gosync.WaitGroup
	errs := make(chan error, len(cmds)*3)
	for _, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				errs <- Write(path, st, &Run{Command: c, Start: now, Duration: time.Second}, now)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if reads := <-readerDone; reads == 0 {
		t.Log("the reader never saw the file")
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mfs := parse(t, path)
	for _, c := range cmds {
		want(t, mfs, ts(now), "seafbak_run_timestamp_seconds", "command", c)
	}
	assertOnly(t, dir, "seafbak.prom")
}

// A previous file seafbak cannot read back (a hand edit) is replaced; only the other
// commands' runs are lost.
func TestUnparseablePreviousFile(t *testing.T) {
	st := testState(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "seafbak.prom")
	garbage := "seafbak_run_exit_code{command=\"dump\" 0\nseafbak_last_scan_timestamp_seconds not-a-number\n"
	if err := os.WriteFile(path, []byte(garbage), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, st, &Run{Command: "sync", Start: now, Duration: time.Second}, now); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, path)
	want(t, mfs, 0, "seafbak_run_exit_code", "command", "sync")
	absent(t, mfs, "seafbak_run_exit_code", "command", "dump")
	absent(t, mfs, "seafbak_last_scan_timestamp_seconds")
	// Without a known scan, an idle library counts from its last success.
	want(t, mfs, 7*24*3600, "seafbak_library_lag_seconds", lib(idSynced, "Photos")...)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("stat: %v %v", fi, err)
	}
}

func TestUnwritableDir(t *testing.T) {
	st := testState(t)
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"missing":         filepath.Join(base, "nonexistent", "seafbak.prom"),
		"not a directory": filepath.Join(file, "seafbak.prom"),
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(base, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		cases["read-only"] = filepath.Join(ro, "seafbak.prom")
	}
	for what, path := range cases {
		err := Write(path, st, &Run{Command: "scan"}, now)
		if err == nil {
			t.Errorf("%s: written", what)
			continue
		}
		if !strings.Contains(err.Error(), "metrics: cannot write "+path) {
			t.Errorf("%s: error %q does not name the file", what, err)
		}
		t.Logf("%s: %v", what, err)
	}
	if _, err := os.Stat(filepath.Join(base, "nonexistent")); err == nil {
		t.Error("the missing directory was created")
	}
	if err := Write("", st, nil, now); err == nil {
		t.Error("empty path accepted")
	}
	// node_exporter would never read it.
	if err := Write(filepath.Join(base, "seafbak.txt"), st, nil, now); err == nil || !strings.Contains(err.Error(), ".prom") {
		t.Errorf("a name without .prom: %v", err)
	}
}

// Render alone: a state with no libraries and no dump is still a valid file.
func TestRenderEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := Render(&buf, &Snapshot{Now: now}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.prom")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, path)
	want(t, mfs, 0, "seafbak_libraries", "state", "synced")
	absent(t, mfs, "seafbak_last_dump_timestamp_seconds")
	absent(t, mfs, "seafbak_last_scan_timestamp_seconds")
	if mfs["seafbak_library_lag_seconds"] != nil {
		t.Error("library metrics without libraries")
	}
}

// A name that is not UTF-8 (a label value must be) does not break the file.
func TestInvalidUTF8Name(t *testing.T) {
	var buf bytes.Buffer
	snap := &Snapshot{Now: now, Libraries: []state.Library{{ID: idSynced, Name: "bad\xff", Head: head(1), LastSuccess: now}}}
	if err := Render(&buf, snap); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `name="bad`+"\uFFFD"+`"`) {
		t.Errorf("name not repaired:\n%s", buf.String())
	}
}

func BenchmarkWrite10000(b *testing.B) {
	st, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		if err := st.Save(state.Library{ID: repoID(i + 1), Name: fmt.Sprintf("library %d", i), Head: head(i), LastAttempt: now, LastSuccess: now}); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "seafbak.prom")
	for b.Loop() {
		if err := Write(path, st, &Run{Command: "sync", Start: now}, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender10000 is Write's own work, without reading the state.
func BenchmarkRender10000(b *testing.B) {
	snap := &Snapshot{Now: now, LastScan: now}
	for i := range 10000 {
		snap.Libraries = append(snap.Libraries, state.Library{ID: repoID(i + 1), Name: fmt.Sprintf("library %d", i), Head: head(i), LastAttempt: now, LastSuccess: now})
	}
	for b.Loop() {
		if err := Render(io.Discard, snap); err != nil {
			b.Fatal(err)
		}
	}
}
