package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"seafbak/restore"
	"seafbak/state"
	"seafbak/sync/object"
	"seafbak/sync/store"
)

type restoreCmd struct {
	Library restoreLibraryCmd `cmd:"" help:"Write one library's files as they were at a commit (latest by default) into a directory, or list its history."`
	Server  restoreServerCmd  `cmd:"" help:"Fail over: load the latest dump into the backup's databases, write the live rows, verify, and print how to start Seafile on the backup host."`
}

type restoreLibraryCmd struct {
	Repo   string  `arg:"" name:"repo-id" help:"The library."`
	To     *string `help:"Directory to write the files into (must be empty unless --force, or hold an interrupted restore of the same commit, which is then finished)." placeholder:"DIR"`
	Commit *string `help:"Restore this commit (see --list)." placeholder:"ID"`
	At     *string `help:"Restore the library as it was at this time: 2026-11-24T18:00:00Z, '2026-11-24 18:00' (local time) or unix seconds." placeholder:"TIME"`
	Path   string  `help:"Restore only this folder or file, a path from the library's top (/Projects/2026, '/Reports/Q3 plan.xlsx'): a folder's contents go into the --to DIR itself, a file goes to DIR/<its name>." placeholder:"PATH"`
	List   bool    `help:"List the library's backed-up history (commit, time, author, description) instead of restoring."`
	Force  bool    `help:"Write into a non-empty directory, replacing files of the same name."`
	JSON   bool    `name:"json" help:"With --list: print JSON."`
}

func (c *restoreLibraryCmd) Run(e *env) error {
	if err := object.CheckRepoID(c.Repo); err != nil {
		return cantRun(err)
	}
	fs, st, err := openBackup(e, false, nil)
	if err != nil {
		return cantRun(err)
	}
	rec, found, err := st.Load(c.Repo)
	if err != nil {
		return cantRun(err)
	}
	if !found || rec.Head == "" {
		return failed(fmt.Errorf("library %s was never backed up (see seafbak status)", c.Repo))
	}
	if c.List {
		for _, f := range []struct {
			flag  string
			given bool
		}{{"--path", c.Path != ""}, {"--to", c.To != nil}, {"--commit", c.Commit != nil}, {"--at", c.At != nil}, {"--force", c.Force}} {
			if f.given {
				return usagef("--list lists the whole library's history and restores nothing; leave out %s", f.flag)
			}
		}
		return c.list(e, fs, rec)
	}
	if c.To == nil {
		return usagef("give --to DIR (or --list to see the history)")
	}
	// Given but empty is a script's unset variable: not the current directory.
	if *c.To == "" {
		return usagef("--to is empty: give the directory to restore into")
	}
	// ~/ is the home directory ($HOME, as a shell's), which no shell expands after
	// --to=; the path is made absolute.
	to := *c.To
	if rest, ok := strings.CutPrefix(to, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return usagef("--to %s: %v", to, err)
		}
		to = filepath.Join(home, rest)
	}
	to, err = filepath.Abs(to)
	if err != nil {
		return usagef("--to %s: %v", *c.To, err)
	}
	// Never into (or around) what seafbak reads and writes: with --force a restore
	// replaces what is in its way.
	for _, d := range []struct{ key, dir string }{{"backup.data_dir", e.cfg.Backup.DataDir}, {"primary.data_dir", e.cfg.Primary.DataDir}, {"state", e.cfg.State}} {
		if d.dir != "" && overlap(to, d.dir) {
			return usagef("--to %s is, or is inside or around, %s (%s): restore into a directory apart from it", to, d.dir, d.key)
		}
	}
	if c.Commit != nil && c.At != nil {
		return usagef("give --commit or --at, not both")
	}
	// Given but empty is a script's unset variable: restoring the latest version
	// instead of the one asked for would go unnoticed.
	if c.Commit != nil && *c.Commit == "" {
		return usagef("--commit is empty: give a commit id (see --list), or leave --commit out for the latest backed-up version")
	}
	if c.At != nil && *c.At == "" {
		return usagef("--at is empty: give a time, or leave --at out for the latest backed-up version")
	}
	if c.JSON {
		return usagef("--json goes with --list: a restore prints one line")
	}
	if _, err := restore.SplitPath(c.Path); err != nil {
		return usagef("--path: %w", err)
	}
	opts := restore.LibraryOptions{Store: fs, State: st, Log: e.log, RepoID: c.Repo, Path: c.Path, Dir: to, Force: c.Force}
	if c.At != nil {
		if opts.At, err = parseTime(*c.At); err != nil {
			return cantRun(err)
		}
		if opts.At.After(time.Now().Add(time.Minute)) {
			return usagef("--at %q is %s, in the future: give a time the library was backed up at (unix seconds, not milliseconds)", *c.At, opts.At.Format(time.RFC3339))
		}
	}
	if c.Commit != nil {
		if err := object.CheckID(*c.Commit); err != nil {
			return cantRun(err)
		}
		opts.Commit = *c.Commit
	}
	if f := terminal(e); f != nil {
		opts.Progress = newByteBar(f, "restore")
	}
	start := time.Now()
	res, err := restore.RestoreLibrary(e.ctx, opts)
	if err != nil {
		switch {
		case errors.Is(err, restore.ErrNotEmpty):
			return cantRun(fmt.Errorf("%w (choose an empty directory, or add --force)", err))
		case errors.Is(err, restore.ErrTargetBusy), errors.Is(err, restore.ErrNotADirectory), errors.Is(err, restore.ErrTargetUnusable):
			return cantRun(err)
		case errors.Is(err, store.ErrNotExist) && c.Commit != nil && !errors.Is(err, restore.ErrBackupDamaged):
			return failed(fmt.Errorf("%w; see which commits the backup holds with: seafbak restore library %s --list", err, c.Repo))
		case errors.Is(err, restore.ErrBadPath):
			return usagef("--path: %w", err)
		case errors.Is(err, restore.ErrPathNotFound):
			return failed(fmt.Errorf("%w; see which commits the library has with: seafbak restore library %s --list, and give --commit or --at of one holding it", err, c.Repo))
		}
		return failed(err)
	}
	resumed := ""
	if res.Resumed {
		resumed = " (finished an interrupted restore)"
	}
	what := "commit " + res.Commit
	if res.Path != "" {
		what = fmt.Sprintf("%q of commit %s", res.Path, res.Commit)
	}
	fmt.Fprintf(e.stdout, "%s %s: restored %s (%s, %q) into %s%s: %d files, %d dirs, %s in %.1fs\n",
		c.Repo, rec.Name, what, res.Time.Format(time.RFC3339), firstLine(res.Description), res.Dir, resumed, res.Files, res.Dirs, humanBytes(res.Bytes), time.Since(start).Seconds())
	return nil
}

func (c *restoreLibraryCmd) list(e *env, fs store.Store, rec state.Library) error {
	hist, err := restore.History(e.ctx, fs, restore.LibraryOf(rec), restore.StateHeads(rec))
	if err != nil {
		return failed(fmt.Errorf("--list: %w", err))
	}
	restore.MarkHeads(hist, rec)
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(hist)
	}
	if rec.Deleted != nil {
		fmt.Fprintf(e.stdout, "# %s %s was deleted on the primary (first seen %s); its backup is kept.\n", rec.ID, rec.Name, rec.Deleted.Format(time.RFC3339))
	}
	var tw table
	tw.row("COMMIT", "TIME", "AUTHOR", "DESCRIPTION", "NOTE")
	for _, h := range hist {
		var note []string
		switch {
		case h.BackedUpHead:
			note = append(note, "backed-up head")
		case h.OldHead:
			note = append(note, "old head (left the primary's history)")
		}
		if h.Error != "" {
			note = append(note, "commit missing: "+h.Error)
		} else if !h.Complete {
			note = append(note, "tree not in the backup (truncated or hole)")
		}
		t := ""
		if !h.Time.IsZero() {
			// With its offset: in the hour a DST change repeats, the local time alone
			// names two instants, and --at takes the form back as it is.
			t = h.Time.Local().Format(listTime)
		}
		tw.row(h.ID, t, h.Author, firstLine(h.Description), strings.Join(note, "; "))
	}
	return tw.write(e.stdout)
}

// listTime is how --list shows a commit's time, one of the forms --at reads.
const listTime = "2006-01-02 15:04:05 -0700"

// parseTime reads the --at forms. A local time without an offset is refused where it
// names no instant or two (the hour a DST change skips or repeats): taken as one of
// them, --at would restore a commit of the other.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	for _, layout := range []string{time.RFC3339, listTime, "2006-01-02 15:04 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		t, err := time.ParseInLocation(layout, s, time.Local)
		if err != nil {
			continue
		}
		twice := func(a, b time.Time) error {
			return fmt.Errorf("--at %q: that local time happened twice (the clocks went back); give its offset as --list shows it: %q or %q", s, a.Format(listTime), b.Format(listTime))
		}
		// The clock's fields as written, whatever form (a one-digit hour, a fraction of
		// a second): where the zone moved them, that local time never was.
		const wall = "2006-01-02 15:04:05"
		asWritten, _ := time.ParseInLocation(layout, s, time.UTC)
		switch {
		case t.Format(wall) != asWritten.Format(wall):
			return time.Time{}, fmt.Errorf("--at %q: there was no such local time (the clocks went forward); give another, or an offset as --list shows it", s)
		case t.Add(-time.Hour).Format(wall) == t.Format(wall):
			return time.Time{}, twice(t.Add(-time.Hour), t)
		case t.Add(time.Hour).Format(wall) == t.Format(wall):
			return time.Time{}, twice(t, t.Add(time.Hour))
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--at %q: give a time like 2026-11-24T18:00:00Z, '2026-11-24 18:00' (local), '2026-11-24 18:00:00 +0100' (as --list shows it) or unix seconds", s)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
