package main

import (
	"database/sql"
	"os"
	gosync "sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

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
	cfg := e.cfg
	st, err := state.Open(cfg.State)
	if err != nil {
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
		bdb, err := dbconn.Open(e.ctx, "backup", cfg.Backup.DB)
		if err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, func() { bdb.Close() })
		eng.Rows = store.NewRows(bdb)
	}
	if f := terminal(e); f != nil {
		eng.Progress = newCountBar(f, "blocks")
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
