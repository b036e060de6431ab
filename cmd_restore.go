package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	gosync "sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"seafbak/restore"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

type verifyCmd struct {
	Repos  []string `arg:"" optional:"" name:"repo-id" help:"Libraries to verify (default: every library in the state)."`
	Sample float64  `help:"Hash only this share of blocks (0 < P <= 1), e.g. 0.05 for a quick nightly run; every block's presence is still checked." default:"1"`
	JSON   bool     `name:"json" help:"Print one JSON document for scripts."`
	Repair bool     `help:"Fetch again from the primary every object found missing or damaged in the backup (verified as always, across the whole history and the old heads), then verify those libraries again. What the primary no longer has is reported."`
}

type restoreCmd struct {
	Library restoreLibraryCmd `cmd:"" help:"Write one library's files as they were at a commit (latest by default) into a directory, or list its history."`
	Server  restoreServerCmd  `cmd:"" help:"Fail over: load the latest dump into the backup's databases, write the live rows, verify, and print how to start Seafile on the backup host."`
}

type restoreLibraryCmd struct {
	Repo   string `arg:"" name:"repo-id" help:"The library."`
	To     string `help:"Directory to write the files into (must be empty unless --force, or hold an interrupted restore of the same commit, which is then finished)." placeholder:"DIR" type:"path"`
	Commit string `help:"Restore this commit (see --list)." placeholder:"ID"`
	At     string `help:"Restore the library as it was at this time: 2026-11-24T18:00:00Z, '2026-11-24 18:00' (local time) or unix seconds." placeholder:"TIME"`
	List   bool   `help:"List the library's backed-up history (commit, time, author, description) instead of restoring."`
	Force  bool   `help:"Write into a non-empty directory, replacing files of the same name."`
	JSON   bool   `name:"json" help:"With --list: print JSON."`
}

// openBackup opens what restore and verify read: the backup store and the state.
func openBackup(e *env) (*store.FS, *state.Dir, error) {
	st, err := state.Open(e.cfg.State)
	if err != nil {
		return nil, nil, err
	}
	fs, err := store.NewFS(e.cfg.Backup.DataDir, store.Batch)
	if err != nil {
		return nil, nil, err
	}
	return fs, st, nil
}

func (c *verifyCmd) run(e *env) int {
	fs, st, err := openBackup(e)
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak verify:", err)
		return exitCantRun
	}
	if c.Sample <= 0 || c.Sample > 1 {
		fmt.Fprintln(e.stderr, "seafbak verify: --sample must be more than 0 and at most 1")
		return exitCantRun
	}
	for _, id := range c.Repos {
		if err := object.CheckRepoID(id); err != nil {
			fmt.Fprintln(e.stderr, "seafbak verify:", err)
			return exitCantRun
		}
	}
	opts := restore.VerifyOptions{Store: fs, State: st, Log: e.log, Libraries: c.Repos, Sample: c.Sample, Parallel: 0}
	if e.cfg.Backup.DB != nil {
		bdb, err := openDB(e.ctx, "backup", e.cfg.Backup.DB)
		if err != nil {
			fmt.Fprintln(e.stderr, "seafbak verify:", err)
			return exitCantRun
		}
		defer bdb.Close()
		if opts.DBHeads, err = store.NewRows(bdb).Heads(e.ctx); err != nil {
			fmt.Fprintln(e.stderr, "seafbak verify:", err)
			return exitCantRun
		}
	}
	if f := terminal(e); f != nil {
		opts.Progress = newByteBar(f, "verify")
	}
	rep, err := restore.Verify(e.ctx, opts)
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak verify:", err)
		return exitCantRun
	}
	var repairs []repairOutcome
	if c.Repair && !rep.OK() {
		if repairs, err = repair(e, opts, rep); err != nil {
			fmt.Fprintln(e.stderr, "seafbak verify --repair:", err)
			return exitCantRun
		}
	}
	holes := withHoles(rep)
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			*restore.VerifyReport
			Repairs   []repairOutcome `json:"repairs,omitempty"`
			WithHoles int             `json:"with_holes"`
		}{rep, repairs, holes})
	} else {
		printRepairs(e, repairs)
		printVerify(e, rep)
		if holes > 0 {
			fmt.Fprintf(e.stdout, "seafbak verify: %d libraries have holes (objects the primary could not give): their backup is incomplete until the primary is repaired and they are synced again (see seafbak status)\n", holes)
		}
	}
	if !rep.OK() || holes > 0 {
		return exitFailed
	}
	return exitOK
}

// withHoles counts the libraries, still on the primary, whose backup has holes: verify
// passes them (the holes are known), but the backup of them is not whole.
func withHoles(rep *restore.VerifyReport) int {
	n := 0
	for _, l := range rep.Libraries {
		if len(l.Holes) > 0 && l.Deleted == nil {
			n++
		}
	}
	return n
}

// repairOutcome is what verify --repair did for one library.
type repairOutcome struct {
	RepoID   string `json:"repo_id"`
	Name     string `json:"name,omitempty"`
	Repaired bool   `json:"repaired"`
	Objects  int    `json:"objects_fetched"`
	Error    string `json:"error,omitempty"`
}

// repair re-syncs every library verify found damaged, re-checking every object against
// its id and fetching again what is missing or damaged, then verifies those libraries
// again and puts their new reports into rep.
func repair(e *env, opts restore.VerifyOptions, rep *restore.VerifyReport) ([]repairOutcome, error) {
	w, err := wire(e, false)
	if err != nil {
		return nil, err
	}
	defer w.closeAll()
	w.engine.Recheck = true
	var outcomes []repairOutcome
	var ids []string
	for _, l := range rep.Libraries {
		if l.OK() {
			continue
		}
		o := repairOutcome{RepoID: l.RepoID, Name: l.Name}
		if l.Deleted != nil {
			o.Error = "deleted on the primary: its objects cannot be fetched again"
			outcomes = append(outcomes, o)
			continue
		}
		res, err := w.engine.Sync(e.ctx, l.RepoID)
		switch {
		case err != nil:
			o.Error = err.Error()
		case res.Deleted:
			o.Error = "deleted on the primary: its objects cannot be fetched again"
		default:
			o.Repaired = true
			o.Objects = res.Commits + res.FSObjects + res.Blocks
		}
		outcomes = append(outcomes, o)
		ids = append(ids, l.RepoID)
	}
	if len(ids) == 0 {
		return outcomes, nil
	}
	again := opts
	again.Libraries = ids
	if w.engine.Rows != nil {
		if again.DBHeads, err = w.engine.Rows.Heads(e.ctx); err != nil {
			return outcomes, err
		}
	}
	after, err := restore.Verify(e.ctx, again)
	if err != nil {
		return outcomes, err
	}
	byID := map[string]restore.LibraryReport{}
	for _, l := range after.Libraries {
		byID[l.RepoID] = l
	}
	for i, l := range rep.Libraries {
		if n, ok := byID[l.RepoID]; ok {
			rep.Libraries[i] = n
		}
	}
	return outcomes, nil
}

func printRepairs(e *env, outcomes []repairOutcome) {
	for _, o := range outcomes {
		if o.Repaired {
			fmt.Fprintf(e.stdout, "%s %s: repaired from the primary (%d objects fetched again)\n", o.RepoID, o.Name, o.Objects)
		} else {
			fmt.Fprintf(e.stdout, "%s %s: could not repair: %s\n", o.RepoID, o.Name, o.Error)
		}
	}
}

func printVerify(e *env, rep *restore.VerifyReport) {
	w := e.stdout
	bad := 0
	for _, l := range rep.Libraries {
		if l.OK() {
			continue
		}
		bad++
		fmt.Fprintf(w, "%s %s: FAILED", l.RepoID, l.Name)
		if l.Error != "" {
			fmt.Fprintf(w, ": %s", l.Error)
		}
		fmt.Fprintln(w)
		for _, p := range l.Problems {
			state := "damaged"
			if p.Missing {
				state = "missing"
			}
			fmt.Fprintf(w, "  %s %s %s at %q in commit %s: %s\n", p.Kind, p.ID, state, p.Path, p.Commit, p.Error)
		}
		for _, h := range l.Heads {
			if !h.Complete && !h.Expected {
				fmt.Fprintf(w, "  head %s (%s) is not complete in the backup\n", h.Commit, h.From)
			}
		}
	}
	for _, l := range rep.Libraries {
		if len(l.Expected) > 0 || len(l.Holes) > 0 || len(l.Truncated) > 0 {
			fmt.Fprintf(w, "%s %s: %d known holes, %d commits with truncated history (expected, see status --json)\n", l.RepoID, l.Name, len(l.Holes), len(l.Truncated))
		}
	}
	hashed := "every block hashed"
	if rep.Sample < 1 {
		hashed = fmt.Sprintf("%d of %d blocks hashed (sample %.0f%%)", rep.BlocksHashed, rep.Blocks, rep.Sample*100)
	}
	mibs := 0.0
	if rep.Seconds > 0 {
		mibs = float64(rep.Bytes) / (1 << 20) / rep.Seconds
	}
	fmt.Fprintf(w, "seafbak verify: %d libraries, %d failed; %d commits, %d fs objects, %d blocks (%s), %s read in %.1fs (%.0f MiB/s)\n",
		len(rep.Libraries), bad, rep.Commits, rep.FSObjects, rep.Blocks, hashed, humanBytes(rep.Bytes), rep.Seconds, mibs)
}

func (c *restoreLibraryCmd) run(e *env) int {
	if err := object.CheckRepoID(c.Repo); err != nil {
		fmt.Fprintln(e.stderr, "seafbak restore library:", err)
		return exitCantRun
	}
	fs, st, err := openBackup(e)
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak restore library:", err)
		return exitCantRun
	}
	rec, found, err := st.Load(c.Repo)
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak restore library:", err)
		return exitCantRun
	}
	if !found || rec.Head == "" {
		fmt.Fprintf(e.stderr, "seafbak restore library: library %s was never backed up (see seafbak status)\n", c.Repo)
		return exitFailed
	}
	if c.List {
		return c.list(e, fs, rec)
	}
	if c.To == "" {
		fmt.Fprintln(e.stderr, "seafbak restore library: give --to DIR (or --list to see the history)")
		return exitCantRun
	}
	if c.Commit != "" && c.At != "" {
		fmt.Fprintln(e.stderr, "seafbak restore library: give --commit or --at, not both")
		return exitCantRun
	}
	opts := restore.LibraryOptions{Store: fs, State: st, Log: e.log, RepoID: c.Repo, Commit: c.Commit, Dir: c.To, Force: c.Force}
	if c.At != "" {
		if opts.At, err = parseTime(c.At); err != nil {
			fmt.Fprintln(e.stderr, "seafbak restore library:", err)
			return exitCantRun
		}
	}
	if c.Commit != "" {
		if err := object.CheckID(c.Commit); err != nil {
			fmt.Fprintln(e.stderr, "seafbak restore library:", err)
			return exitCantRun
		}
	}
	if f := terminal(e); f != nil {
		opts.Progress = newByteBar(f, "restore")
	}
	start := time.Now()
	res, err := restore.RestoreLibrary(e.ctx, opts)
	if err != nil {
		fmt.Fprintf(e.stderr, "seafbak restore library %s: %v\n", c.Repo, err)
		if errors.Is(err, restore.ErrNotEmpty) {
			fmt.Fprintln(e.stderr, "  (choose an empty directory, or add --force)")
			return exitCantRun
		}
		return exitFailed
	}
	resumed := ""
	if res.Resumed {
		resumed = " (finished an interrupted restore)"
	}
	fmt.Fprintf(e.stdout, "%s %s: restored commit %s (%s, %q) into %s%s: %d files, %d dirs, %s in %.1fs\n",
		c.Repo, rec.Name, res.Commit, res.Time.Format(time.RFC3339), firstLine(res.Description), res.Dir, resumed, res.Files, res.Dirs, humanBytes(res.Bytes), time.Since(start).Seconds())
	return exitOK
}

func (c *restoreLibraryCmd) list(e *env, fs *store.FS, rec state.Library) int {
	hist, err := restore.History(e.ctx, fs, restore.LibraryOf(rec), restore.StateHeads(rec))
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak restore library --list:", err)
		return exitFailed
	}
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(hist)
		return exitOK
	}
	if rec.Deleted != nil {
		fmt.Fprintf(e.stdout, "# %s %s was deleted on the primary (first seen %s); its backup is kept.\n", rec.ID, rec.Name, rec.Deleted.Format(time.RFC3339))
	}
	old := map[string]bool{}
	for _, h := range rec.OldHeads {
		old[h.Head] = true
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMMIT\tTIME\tAUTHOR\tDESCRIPTION\tNOTE")
	for _, h := range hist {
		var note []string
		switch {
		case h.ID == rec.Head:
			note = append(note, "backed-up head")
		case old[h.ID]:
			note = append(note, "old head (left the primary's history)")
		}
		if h.Error != "" {
			note = append(note, "commit missing: "+h.Error)
		} else if !h.Complete {
			note = append(note, "tree not in the backup (truncated or hole)")
		}
		t := ""
		if !h.Time.IsZero() {
			t = h.Time.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.ID, t, h.Author, firstLine(h.Description), strings.Join(note, "; "))
	}
	tw.Flush()
	return exitOK
}

// parseTime reads the --at forms.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--at %q: give a time like 2026-11-24T18:00:00Z, '2026-11-24 18:00' (local) or unix seconds", s)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// terminal returns stderr when it is a terminal: progress bars go only there.
func terminal(e *env) *os.File {
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

// byteBar is a progress bar over bytes for verify and restore.
type byteBar struct {
	mu gosync.Mutex
	b  *progressbar.ProgressBar
}

func newByteBar(out *os.File, what string) *byteBar {
	return &byteBar{b: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (b *byteBar) Todo(objects, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bytes > 0 {
		b.b.ChangeMax64(b.b.GetMax64() + bytes)
	}
}

func (b *byteBar) Done(objects, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Add64(bytes)
}
