package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	gosync "sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"seafbak/config"
	"seafbak/dump"
	"seafbak/internal/dbconn"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// wiring is everything the sync engine needs, opened from the config.
type wiring struct {
	engine   *seafsync.Engine
	catalog  primary.Catalog
	state    *state.Dir
	closeAll func()
}

func wire(e *env, force bool) (*wiring, error) {
	st, err := state.Open(e.cfg.State)
	if err != nil {
		return nil, err
	}
	return wireState(e, st, force)
}

// wireState is wire for a state the caller has opened already (scan: it holds the
// state's scan lock before anything else is opened).
func wireState(e *env, st *state.Dir, force bool) (*wiring, error) {
	cfg := e.cfg
	// Every command wired here can move the backup database's rows.
	if err := st.RefuseIfFailedOver(); err != nil {
		return nil, err
	}
	pdb, err := dbconn.Open(e.ctx, "primary", cfg.Primary.DB)
	if err != nil {
		return nil, err
	}
	closers := []func(){func() { pdb.Close() }}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	source, err := openSource(e, pdb)
	if err != nil {
		closeAll()
		return nil, err
	}
	var rows *store.Rows
	if cfg.Backup.DB != nil {
		bdb, err := dbconn.Open(e.ctx, "backup", cfg.Backup.DB)
		if err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, func() { bdb.Close() })
		if cfg.Backup.DB.DBName == cfg.Primary.DB.DBName {
			// The same name on another address (a socket and a TCP port of one server,
			// say) may still be the primary's own database: ask both servers.
			same, err := sameDatabase(e.ctx, pdb, bdb)
			if err != nil {
				closeAll()
				return nil, err
			}
			if same {
				closeAll()
				return nil, fmt.Errorf("backup.db %s: %w", cfg.Backup.DB.DBName, config.ErrBackupDBIsPrimary)
			}
		}
		rows = store.NewRows(bdb)
	}
	if err := checkStoreThere(e.ctx, cfg, st, rows, true); err != nil {
		closeAll()
		return nil, err
	}
	bs, err := openStore(e.ctx, cfg, false)
	if err != nil {
		closeAll()
		return nil, err
	}
	eng := &seafsync.Engine{
		Source:   source,
		Store:    bs,
		State:    st,
		Log:      e.log,
		Rows:     rows,
		Parallel: cfg.Parallel,
		Force:    force,
	}
	if f := terminal(e); f != nil {
		eng.Progress = newCountBar(f, "blocks")
	}
	return &wiring{engine: eng, catalog: source, state: st, closeAll: closeAll}, nil
}

// sameDatabase reports whether a and b, databases of one name, are one database: the
// same server, by the rule restore server's never-over-the-primary guard uses.
func sameDatabase(ctx context.Context, a, b *sql.DB) (bool, error) {
	ia, err := dump.ServerIdentity(ctx, a)
	if err != nil {
		return false, fmt.Errorf("primary database: %w", err)
	}
	ib, err := dump.ServerIdentity(ctx, b)
	if err != nil {
		return false, fmt.Errorf("backup database: %w", err)
	}
	return ia.Same(ib), nil
}

// errStoreNotThere: a filesystem store with no storage/ directory, beside a state that
// records backed-up libraries.
var errStoreNotThere = errors.New("the backup store has no storage/ directory, but the state records backed-up libraries: is the backup disk mounted, and backup.data_dir right? (a new store is made only for a state that has backed up nothing)")

// checkStoreThere refuses to make a new filesystem store for a state that has backed
// up libraries: that is the backup disk not mounted, or a wrong path, and making the
// store would copy every library's whole history again onto the wrong filesystem
// (and the real store would then lack what the state records).
//
// The state may be on the same disk, not mounted either, and so as new as the store:
// then the backup database (rows, when configured) tells, holding the heads only
// seafbak's syncs write there. A command that only reads the store (mayMake false)
// refuses one with no storage/ in any case: there is nothing to read, and what it made
// there would let the next scan through.
func checkStoreThere(ctx context.Context, cfg *config.Config, st *state.Dir, rows *store.Rows, mayMake bool) error {
	if cfg.Backup.Store == config.StoreS3 {
		return nil
	}
	storage := filepath.Join(cfg.Backup.DataDir, "storage")
	fi, err := os.Stat(storage)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("backup store %s: %s is not a directory (is backup.data_dir right?)", cfg.Backup.DataDir, storage)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		// Unreadable, or backup.data_dir a file: status, which does not open the
		// store, would report every library whole over it.
		return fmt.Errorf("backup store %s (backup.data_dir): %w", cfg.Backup.DataDir, err)
	}
	recs, damaged, err := st.All()
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.Head != "" {
			return fmt.Errorf("backup store %s (state %s): %w", cfg.Backup.DataDir, st.Root(), errStoreNotThere)
		}
	}
	if rows != nil && len(recs) == 0 && len(damaged) == 0 {
		heads, err := rows.Heads(ctx)
		if err != nil {
			return err
		}
		if len(heads) > 0 {
			return fmt.Errorf("backup store %s, state %s: %w (it holds %d libraries' heads)", cfg.Backup.DataDir, st.Root(), errNothingThere, len(heads))
		}
	}
	if !mayMake {
		return fmt.Errorf("backup store %s: %w", cfg.Backup.DataDir, errStoreEmpty)
	}
	return nil
}

// errStoreEmpty: a command that reads the store found no storage/ directory, and the
// state records nothing either (else errStoreNotThere).
var errStoreEmpty = errors.New("no storage/ directory: nothing has been backed up into it (is backup.data_dir right, and its disk mounted?)")

// errNothingThere: neither the store nor the state holds anything, but the backup
// database holds heads seafbak's syncs wrote.
var errNothingThere = errors.New("the backup store has no storage/ directory and the state records no library, but the backup database says libraries were backed up: are the disks of the store and the state mounted? (to start over from nothing on purpose, empty the backup database's Repo, Branch and RepoHead tables first)")

// errNotApart: backup.data_dir is primary.data_dir, or inside it, or holds it.
var errNotApart = errors.New("the backup store would be written into the primary's seafile-data: give backup.data_dir a directory apart from primary.data_dir")

// checkApart refuses a backup store that is the primary's data dir, or inside it, or
// around it, reached by another name: a symlink, or a bind mount of either (the config
// already refused what the names alone show, see config.Nested).
func checkApart(primaryDir, backupDir string) error {
	if overlap(primaryDir, backupDir) {
		return fmt.Errorf("backup.data_dir %s, primary.data_dir %s: %w", backupDir, primaryDir, errNotApart)
	}
	return nil
}

// overlap reports whether directories a and b are the same, or one is inside the other,
// by name, through symlinks or under two names (a bind mount). Either may not exist yet.
func overlap(a, b string) bool {
	resolve := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return filepath.Clean(p)
	}
	p, q := resolve(a), resolve(b)
	// Each directory, and every one above it, against the other: the same directory
	// under two names (a bind mount) is the same file.
	within := func(inner, outer string) bool {
		o, err := os.Stat(outer)
		if err != nil {
			return false
		}
		for d := inner; ; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && os.SameFile(fi, o) {
				return true
			}
			if d == filepath.Dir(d) {
				return false
			}
		}
	}
	return config.Nested(p, q) || within(q, p) || within(p, q)
}

// openStore opens the backup store the config selects: the filesystem (backup.data_dir)
// or S3 (backup.s3). readOnly opens an existing filesystem store without creating or
// sweeping anything (status); S3 has nothing to create either way, and NewS3 checks
// the buckets and credentials before any work.
func openStore(ctx context.Context, cfg *config.Config, readOnly bool) (store.Store, error) {
	b := cfg.Backup
	switch b.Store {
	case config.StoreS3:
		return store.NewS3(ctx, s3Options(b.S3))
	case config.StoreFS, "":
		if cfg.Primary.DataDir != "" {
			if err := checkApart(cfg.Primary.DataDir, b.DataDir); err != nil {
				return nil, err
			}
		}
		if readOnly {
			return store.OpenFS(b.DataDir)
		}
		durability := store.Batch
		if b.PerObjectFsync {
			durability = store.PerObject
		}
		return store.NewFS(b.DataDir, durability)
	}
	return nil, fmt.Errorf("backup.store %q is not one of fs, s3", b.Store)
}

func s3Options(c config.S3) store.S3Options {
	return store.S3Options{
		Endpoint: c.Endpoint, Region: c.Region,
		Buckets:   store.S3Buckets{Commits: c.CommitBucket, FS: c.FSBucket, Blocks: c.BlockBucket},
		PathStyle: c.PathStyle, TLS: c.UseHTTPS, CAFile: c.CAFile,
		AccessKey: c.AccessKey, SecretKey: c.SecretKey,
	}
}

// openSource picks where objects come from: the primary's data dir, or its file server.
func openSource(e *env, pdb *sql.DB) (primary.Source, error) {
	p := e.cfg.Primary
	if p.URL == "" {
		dir, err := primary.NewDir(p.DataDir)
		if err != nil {
			return nil, err
		}
		return primary.Combine(primary.NewDB(pdb), dir), nil
	}
	h, err := primary.NewHTTP(primary.HTTPOptions{
		URL: p.URL, SyncToken: p.SyncToken, CAFile: p.CAFile,
		MaxInFlight: 8 * e.cfg.Parallel, Log: e.log,
	})
	if err != nil {
		return nil, err
	}
	if err := h.CheckProtocol(e.ctx); err != nil {
		return nil, err
	}
	return primary.NewRemote(pdb, h, p.SyncToken), nil
}

// terminal returns stderr when it is a terminal: progress bars go only there.
func terminal(e *env) *os.File {
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

// meterBar is a progress.Meter drawn on a terminal; cron and systemd never see it. It is
// locked: a scan syncs several libraries at once into one bar.
type meterBar struct {
	mu    gosync.Mutex
	bytes bool // counts bytes (verify, restore), or objects (sync's blocks)
	todo  int64
	b     *progressbar.ProgressBar
}

// newByteBar counts bytes of file content: verify and restore.
func newByteBar(out *os.File, what string) *meterBar { return newMeterBar(out, what, true) }

// newCountBar counts objects: the blocks a sync copies.
func newCountBar(out *os.File, what string) *meterBar { return newMeterBar(out, what, false) }

func newMeterBar(out *os.File, what string, bytes bool) *meterBar {
	return &meterBar{bytes: bytes, b: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (m *meterBar) pick(objects, bytes int64) int64 {
	if m.bytes {
		return bytes
	}
	return objects
}

func (m *meterBar) Todo(objects, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.pick(objects, bytes); n > 0 {
		m.todo += n
		m.b.ChangeMax64(m.todo)
	}
}

func (m *meterBar) Done(objects, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.b.Add64(m.pick(objects, bytes))
}
