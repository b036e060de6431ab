package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	gosync "sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// openDB connects with a checked config; errors never show the password. Every query on
// the pool it returns is bounded by c's socket deadlines (config's db_timeout), so a
// server that stops answering fails the query instead of hanging it and the library
// lock its caller holds; the first ping is bounded by them too (at least 15 s).
func openDB(ctx context.Context, what string, c *mysql.Config) (*sql.DB, error) {
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("%s database: %w", what, err)
	}
	db := sql.OpenDB(conn)
	pctx, cancel := context.WithTimeout(ctx, max(15*time.Second, c.Timeout+c.ReadTimeout))
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s database %s at %s: %w", what, c.DBName, c.Addr, err)
	}
	return db, nil
}

// wiring is everything the sync engine needs, opened from the config.
type wiring struct {
	engine   *seafsync.Engine
	catalog  primary.Catalog
	state    *state.Dir
	closeAll func()
}

func wire(e *env, force bool) (*wiring, error) {
	cfg := e.cfg
	st, err := state.Open(cfg.State)
	if err != nil {
		return nil, err
	}
	pdb, err := openDB(e.ctx, "primary", cfg.Primary.DB)
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
	durability := store.Batch
	if cfg.Backup.PerObjectFsync {
		durability = store.PerObject
	}
	fs, err := store.NewFS(cfg.Backup.DataDir, durability)
	if err != nil {
		closeAll()
		return nil, err
	}
	eng := &seafsync.Engine{
		Source:   source,
		Store:    fs,
		State:    st,
		Log:      e.log,
		Parallel: cfg.Parallel,
		Force:    force,
	}
	if cfg.Backup.DB != nil {
		bdb, err := openDB(e.ctx, "backup", cfg.Backup.DB)
		if err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, func() { bdb.Close() })
		eng.Rows = store.NewRows(bdb)
	}
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		eng.Observer = newBar(f)
	}
	return &wiring{engine: eng, catalog: source, state: st, closeAll: closeAll}, nil
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
		Conns: max(8, 2*e.cfg.Parallel), Log: e.log,
	})
	if err != nil {
		return nil, err
	}
	if err := h.CheckProtocol(e.ctx); err != nil {
		return nil, err
	}
	return primary.NewRemote(pdb, h, p.SyncToken), nil
}

// bar shows copying progress on a terminal; cron never sees it. A scan syncs several
// libraries at once, so it is locked.
type bar struct {
	mu  gosync.Mutex
	out *os.File
	b   *progressbar.ProgressBar
}

func newBar(out *os.File) *bar { return &bar{out: out} }

func (b *bar) Planned(repoID string, blocks int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b != nil {
		b.b.Finish()
	}
	b.b = progressbar.NewOptions(blocks,
		progressbar.OptionSetWriter(b.out),
		progressbar.OptionSetDescription(repoID[:8]+" blocks"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowBytes(false),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (b *bar) Copied(int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b != nil {
		b.b.Add(1)
	}
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
