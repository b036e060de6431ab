package scan

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"seafbak/internal/jsonout"
	"seafbak/state"
	"seafbak/sync/primary"
)

// Report is where every library stands, in the terms of Seafile's own backup server.
type Report struct {
	Total        int `json:"total"`
	Synchronized int `json:"synchronized"`
	Waiting      int `json:"waiting"`
	Syncing      int `json:"syncing"`
	FailedCount  int `json:"failed"`
	// WithHoles counts the libraries (not deleted on the primary) whose backup lacks
	// objects the primary could not give; they are in Synchronized too when their head
	// is the primary's.
	WithHoles int `json:"with_holes"`
	// RetryingFailed counts the syncing libraries whose last attempt failed: a retry
	// is under way, and until it succeeds they are not healthy.
	RetryingFailed int  `json:"retrying_failed"`
	Offline        bool `json:"offline"` // from state alone: waiting means never synced

	SyncingList []Entry `json:"syncing_libraries"`
	FailedList  []Entry `json:"failed_libraries"`
	// Holes lists every library with holes, deleted ones too (with deleted_at).
	Holes     []Entry     `json:"holes"`
	Truncated []Entry     `json:"truncated"`
	Deleted   []Entry     `json:"deleted"`
	LastDump  *state.Dump `json:"last_dump,omitempty"`
	// LastDumpError says why the last dump's record could not be read (the next dump
	// rewrites it).
	LastDumpError string `json:"last_dump_error,omitempty"`
	// ScanFailed: the last scan could not run at all (see state.ScanFailure). The
	// backup is then standing still, whatever the libraries' own standing says.
	ScanFailed *state.ScanFailure `json:"scan_failed,omitempty"`
	// FailedOver: restore server made this host's databases Seafile's (see
	// state.FailedOver); seafbak no longer syncs here.
	FailedOver *state.FailedOver `json:"failed_over,omitempty"`
	// Libraries is every library of the report, with its backed-up head, last success
	// and lag, for scripts and monitoring.
	Libraries []LibraryState `json:"libraries"`
	// Behind is the library whose backup has lagged the primary longest, if any has.
	Behind *LibraryState `json:"behind,omitempty"`
}

// LibraryState is one library's standing.
type LibraryState struct {
	RepoID      string     `json:"repo_id"`
	Name        string     `json:"name"`
	State       string     `json:"state"` // synchronized, waiting, syncing, failed
	Head        string     `json:"head,omitempty"`
	PrimaryHead string     `json:"primary_head,omitempty"` // empty offline
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	// LagSeconds is how long the backup has not matched the primary: 0 when it does,
	// the time since its last success otherwise; absent when it never succeeded.
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	// PrimaryHeadTime is when the primary's head was committed (RepoInfo), HeadTime when
	// the backed-up head was; BehindSeconds the difference: how much of the primary's
	// history (in commit time) the backup is missing, 0 when synchronized. Absent where
	// a time is unknown (offline, never backed up, an old primary without RepoInfo).
	PrimaryHeadTime *time.Time `json:"primary_head_time,omitempty"`
	HeadTime        *time.Time `json:"head_time,omitempty"`
	BehindSeconds   *float64   `json:"behind_seconds,omitempty"`
	Holes           int        `json:"holes,omitempty"`
}

// HeadTimer reads when a backed-up commit was made (its ctime), from the backup store.
type HeadTimer func(repoID, commitID string) (time.Time, bool)

// Entry is one library in a list of the report.
type Entry struct {
	RepoID      string     `json:"repo_id"`
	Name        string     `json:"name"`
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	Error       string     `json:"error,omitempty"`
	// ErrorClass is the error's class (state.Failure*), where the record keeps one.
	ErrorClass string       `json:"error_class,omitempty"`
	Holes      []state.Hole `json:"holes,omitempty"`
	Truncated  int          `json:"truncated_commits,omitempty"`
	DeletedAt  *time.Time   `json:"deleted_at,omitempty"`
}

// Healthy reports whether every library is fully backed up: none failed, none has
// holes.
func (r *Report) Healthy() bool {
	return r.FailedCount == 0 && r.RetryingFailed == 0 && r.WithHoles == 0 && r.ScanFailed == nil && r.FailedOver == nil
}

// Status compares the primary's heads (one query) with the state. With cat nil it works
// from the state alone.
func Status(ctx context.Context, cat primary.Catalog, st *state.Dir) (*Report, error) {
	return StatusTimed(ctx, cat, st, nil)
}

// StatusTimed is Status that also reads, with headTime, when each library's backed-up
// head was committed, to tell how far behind the primary it is (BehindSeconds).
func StatusTimed(ctx context.Context, cat primary.Catalog, st *state.Dir, headTime HeadTimer) (*Report, error) {
	recs, damaged, err := st.All()
	if err != nil {
		return nil, err
	}
	// Lists are empty, not null, in JSON: scripts iterate them without a check.
	r := &Report{Offline: cat == nil, SyncingList: []Entry{}, FailedList: []Entry{}, Holes: []Entry{},
		Truncated: []Entry{}, Deleted: []Entry{}, Libraries: []LibraryState{}}
	now := time.Now()
	if r.LastDump, err = st.LastDump(); err != nil {
		// The dump's record says nothing of the libraries: a damaged one is a line of
		// the report, not a report that cannot be made.
		r.LastDumpError = err.Error()
	}
	if r.ScanFailed, err = st.LastScanFailure(); err != nil {
		return nil, err
	}
	if r.FailedOver, err = st.LastFailover(); err != nil {
		return nil, err
	}
	known := make(map[string]*state.Library, len(recs))
	for i := range recs {
		known[recs[i].ID] = &recs[i]
	}
	isDamaged := make(map[string]*state.DamagedError, len(damaged))
	for _, de := range damaged {
		isDamaged[de.RepoID] = de
	}
	type lib struct {
		id, name, head string
		headTime       time.Time
	}
	var libs []lib
	listed := map[string]bool{}
	if cat != nil {
		pl, err := cat.Libraries(ctx)
		if err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		for _, l := range pl {
			libs = append(libs, lib{l.ID, l.Name, l.Head, l.HeadTime})
			listed[l.ID] = true
		}
	} else {
		for _, rec := range recs {
			if rec.Deleted == nil {
				libs = append(libs, lib{id: rec.ID, name: rec.Name, head: rec.Head})
			}
		}
	}
	// A damaged record is failed even if the primary no longer lists the library: who
	// knows whether the record said deleted, and the admin must fix it either way.
	for _, de := range damaged {
		if !listed[de.RepoID] {
			libs = append(libs, lib{id: de.RepoID})
		}
	}
	sort.Slice(libs, func(i, j int) bool { return libs[i].id < libs[j].id })
	r.Total = len(libs)
	for _, l := range libs {
		rec := known[l.id]
		name := l.name
		if name == "" && rec != nil {
			name = rec.Name
		}
		ls := LibraryState{RepoID: l.id, Name: name, PrimaryHead: l.head}
		if rec != nil {
			ls.Head, ls.Holes = rec.Head, len(rec.Holes)
			if !rec.LastSuccess.IsZero() {
				t := rec.LastSuccess
				ls.LastSuccess = &t
			}
			if !rec.LastAttempt.IsZero() {
				t := rec.LastAttempt
				ls.LastAttempt = &t
			}
		}
		switch {
		case isDamaged[l.id] != nil:
			ls.State = "failed"
			r.FailedCount++
			r.FailedList = append(r.FailedList, Entry{RepoID: l.id, Name: name, Error: isDamaged[l.id].Error()})
		case rec != nil && rec.Head != "" && rec.Head == l.head && !rec.Failed() && rec.Deleted == nil:
			// Holes do not make it waiting: the head is backed up, and the holes are
			// counted on their own below.
			ls.State = "synchronized"
			r.Synchronized++
		case st.Busy(l.id):
			ls.State = "syncing"
			r.Syncing++
			e := Entry{RepoID: l.id, Name: name}
			if rec != nil && rec.Failed() {
				// Being retried: still failed until the retry succeeds (the metrics and
				// --if-changed say so too), or status's exit code would flap with
				// every retry of a watch.
				r.RetryingFailed++
				t := rec.LastAttempt
				e.LastAttempt, e.Error, e.ErrorClass = &t, rec.LastError, rec.FailedBecause
			}
			r.SyncingList = append(r.SyncingList, e)
		case rec != nil && rec.Failed():
			ls.State = "failed"
			r.FailedCount++
			t := rec.LastAttempt
			r.FailedList = append(r.FailedList, Entry{RepoID: l.id, Name: name, LastAttempt: &t, Error: rec.LastError, ErrorClass: rec.FailedBecause})
		default:
			ls.State = "waiting"
			r.Waiting++
		}
		switch {
		case ls.State == "synchronized":
			zero := 0.0
			ls.LagSeconds = &zero
		case ls.LastSuccess != nil:
			lag := now.Sub(*ls.LastSuccess).Seconds()
			ls.LagSeconds = &lag
		}
		if !l.headTime.IsZero() {
			t := l.headTime
			ls.PrimaryHeadTime = &t
		}
		switch {
		case rec != nil && !rec.HeadTime.IsZero():
			t := rec.HeadTime
			ls.HeadTime = &t
		case headTime != nil && ls.Head != "":
			// A record from before head times were kept: read from the store.
			if t, ok := headTime(l.id, ls.Head); ok {
				ls.HeadTime = &t
			}
		}
		switch {
		case ls.State == "synchronized":
			zero := 0.0
			ls.BehindSeconds = &zero
		case ls.PrimaryHeadTime != nil && ls.HeadTime != nil:
			behind := max(ls.PrimaryHeadTime.Sub(*ls.HeadTime).Seconds(), 0)
			ls.BehindSeconds = &behind
		}
		r.Libraries = append(r.Libraries, ls)
	}
	for i := range r.Libraries {
		l := &r.Libraries[i]
		if l.LagSeconds != nil && *l.LagSeconds > 0 && (r.Behind == nil || *l.LagSeconds > *r.Behind.LagSeconds) {
			r.Behind = l
		}
	}
	for _, rec := range recs {
		if len(rec.Holes) > 0 {
			r.Holes = append(r.Holes, Entry{RepoID: rec.ID, Name: rec.Name, Holes: rec.Holes, DeletedAt: rec.Deleted})
			// A deleted library's holes can never be filled: they stay listed but do
			// not keep status failing forever.
			if rec.Deleted == nil {
				r.WithHoles++
			}
		}
		if len(rec.Truncated) > 0 {
			r.Truncated = append(r.Truncated, Entry{RepoID: rec.ID, Name: rec.Name, Truncated: len(rec.Truncated)})
		}
		if rec.Deleted != nil {
			r.Deleted = append(r.Deleted, Entry{RepoID: rec.ID, Name: rec.Name, DeletedAt: rec.Deleted})
		}
	}
	return r, nil
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Second)
}

// WriteJSON writes the report as one JSON document, indented by two spaces, a library
// at a time.
func (r *Report) WriteJSON(w io.Writer) error {
	rest := *r
	rest.Libraries = nil
	return jsonout.WriteIndented(w, &rest, "libraries", r.Libraries)
}

// WriteText prints the report in the lines and order of Seafile's backup server.
func (r *Report) WriteText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "Total number of libraries: %d\nNumber of synchronized libraries: %d\nNumber of libraries waiting for sync: %d\nNumber of libraries syncing: %d\nNumber of libraries failed to sync: %d\nList of syncing libraries:\n",
		r.Total, r.Synchronized, r.Waiting, r.Syncing, r.FailedCount)
	if err != nil {
		return err
	}
	for _, e := range r.SyncingList {
		fmt.Fprintf(w, "%s %s\n", e.RepoID, e.Name)
	}
	fmt.Fprintln(w, "List of libraries failed to sync:")
	for _, e := range r.FailedList {
		at := "-" // a damaged record: when it was last attempted is unknown
		if e.LastAttempt != nil {
			at = e.LastAttempt.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s %s %s %s\n", e.RepoID, e.Name, at, oneLine(e.Error))
	}
	// After Seafile's lines, so scripts reading those are not disturbed.
	fmt.Fprintf(w, "Number of libraries synchronized with holes: %d\nList of libraries with holes:\n", r.WithHoles)
	for _, e := range r.Holes {
		if e.DeletedAt != nil {
			continue
		}
		h := e.Holes[0]
		at := ""
		if h.Path != "" {
			at = fmt.Sprintf(" at %q", h.Path)
		}
		n := fmt.Sprintf("%d holes", len(e.Holes))
		if len(e.Holes) == 1 {
			n = "1 hole"
		}
		fmt.Fprintf(w, "%s %s %s, first: %s %s%s\n", e.RepoID, e.Name, n, h.Kind, h.ID, at)
	}
	if r.RetryingFailed > 0 {
		// Failed, and syncing again right now: Seafile's lines count them syncing, but
		// the exit code and --if-changed count them failed, and the mail must say why.
		fmt.Fprintf(w, "Number of failed libraries being retried: %d\nList of failed libraries being retried:\n", r.RetryingFailed)
		for _, e := range r.SyncingList {
			if e.Error != "" {
				fmt.Fprintf(w, "%s %s %s %s\n", e.RepoID, e.Name, e.LastAttempt.Format(time.RFC3339), oneLine(e.Error))
			}
		}
	}
	if b := r.Behind; b != nil {
		fmt.Fprintf(w, "Longest behind the primary: %s %s, last backed up %s (%s ago)", b.RepoID, b.Name,
			b.LastSuccess.Format(time.RFC3339), seconds(*b.LagSeconds))
		if b.BehindSeconds != nil && *b.BehindSeconds > 0 {
			fmt.Fprintf(w, "; its backed-up head was committed %s before the primary's (%s)",
				seconds(*b.BehindSeconds), b.PrimaryHeadTime.Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	if d := r.LastDump; d != nil {
		fmt.Fprintf(w, "Last database dump: %s (%s)\n", d.Finished.Format(time.RFC3339), d.Dir)
	} else if r.LastDumpError != "" {
		fmt.Fprintf(w, "Last database dump: unknown: %s\n", oneLine(r.LastDumpError))
	}
	if f := r.ScanFailed; f != nil {
		fmt.Fprintf(w, "The last scan could not run (%s): %s\n", f.At.Format(time.RFC3339), oneLine(f.Error))
	}
	if f := r.FailedOver; f != nil {
		fmt.Fprintf(w, "This host serves Seafile since a failover (restore server, %s, dump %s): seafbak no longer syncs into its databases\n",
			f.At.Format(time.RFC3339), f.DumpSet)
	}
	return nil
}

func oneLine(s string) string {
	out := []rune{}
	for _, c := range s {
		if c == '\n' || c == '\r' {
			c = ' '
		}
		out = append(out, c)
	}
	return string(out)
}
