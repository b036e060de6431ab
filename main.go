// Command seafbak keeps a real-time, consistent, full-history backup of a Seafile server.
// This file only parses arguments, wires the packages together and prints; the work is
// done by sync (the engine), scan (cron's diff and status) and state (the records).
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	gosync "sync"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/go-sql-driver/mysql"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"seafbak/config"
	"seafbak/scan"
	"seafbak/state"
	seafsync "seafbak/sync"
	"seafbak/sync/object"
	"seafbak/sync/primary"
	"seafbak/sync/store"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitFailed  = 1 // some library failed (sync, scan) or is failed (status)
	exitCantRun = 2 // bad arguments or config, primary or state unreachable: nothing could be told
)

type cli struct {
	Config  string           `help:"Config file. Default: $$SEAFBAK_CONFIG, then ${default_config}." placeholder:"FILE"`
	Verbose bool             `short:"v" help:"Log each library's progress, not only warnings and errors."`
	Version kong.VersionFlag `help:"Print the version and exit."`

	Sync    syncCmd    `cmd:"" help:"Back up libraries now (the primary's change hook runs this); waits for a sync of the same library already running."`
	Scan    scanCmd    `cmd:"" help:"Back up every new or changed library (run from cron every few minutes)."`
	Status  statusCmd  `cmd:"" help:"Show where every library's backup stands. Exit 0 all healthy, 1 some failed or have holes, 2 could not tell."`
	Dump    dumpCmd    `cmd:"" help:"Dump the primary's ccnet, seafile (all but the three tables sync keeps live) and seahub databases, consistently, into dump.dir; keep the last dump.keep."`
	Verify  verifyCmd  `cmd:"" help:"Check the backup store: every object of every backed-up head's full history present and matching its id. Exit 0 ok, 1 problems found."`
	Restore restoreCmd `cmd:"" help:"Get backed-up data back: one library at any point of its history, or the whole server (failover)."`
}

type syncCmd struct {
	Repos []string `arg:"" name:"repo-id" help:"Library ids to back up."`
	Force bool     `help:"Skip objects that are missing or corrupt on the primary, back up the rest and record the holes; later syncs retry them."`
}

type scanCmd struct{}

type statusCmd struct {
	JSON    bool `name:"json" help:"Print one JSON document for scripts (adds every hole, truncated history and deleted libraries)."`
	Offline bool `help:"Use the state alone, without asking the primary (waiting then means never synced)."`
}

// env is what a command runs with.
type env struct {
	ctx    context.Context
	cfg    *config.Config
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer
}

// memoryLimit is a soft heap limit: a first backup of a library with 100 000 files holds
// its new fs objects until they can be written bottom-up, and without a limit Go's GC
// lets the heap grow to twice that. GOMEMLIMIT overrides it.
const memoryLimit = 160 << 20

func main() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c cli
	exit := -1
	parser, err := kong.New(&c,
		kong.Name("seafbak"),
		kong.Description("Real-time, full-history backup of a Seafile server."),
		kong.UsageOnError(),
		kong.Vars{"version": version(), "default_config": config.DefaultPath},
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code; panic(exitSignal{}) }),
	)
	if err != nil {
		fmt.Fprintln(stderr, "seafbak:", err)
		return exitCantRun
	}
	kctx, perr := parseArgs(parser, args)
	if exit >= 0 { // --help or --version
		return exit
	}
	if perr != nil {
		fmt.Fprintln(stderr, "seafbak:", perr)
		return exitCantRun
	}
	level := slog.LevelWarn
	if c.Verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(config.Resolve(c.Config))
	if err != nil {
		fmt.Fprintln(stderr, "seafbak:", err)
		return exitCantRun
	}
	e := &env{ctx: ctx, cfg: cfg, log: log, stdout: stdout, stderr: stderr}
	switch kctx.Command() {
	case "sync <repo-id>":
		return c.Sync.run(e)
	case "scan":
		return c.Scan.run(e)
	case "status":
		return c.Status.run(e)
	case "dump":
		return c.Dump.run(e)
	case "verify", "verify <repo-id>":
		return c.Verify.run(e)
	case "restore library <repo-id>":
		return c.Restore.Library.run(e)
	case "restore server":
		return c.Restore.Server.run(e)
	}
	fmt.Fprintln(stderr, "seafbak: unknown command", kctx.Command())
	return exitCantRun
}

type exitSignal struct{}

// parseArgs runs kong's parser, turning its exit (after --help/--version) into a return.
func parseArgs(p *kong.Kong, args []string) (kctx *kong.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exitSignal); !ok {
				panic(r)
			}
		}
	}()
	return p.Parse(args)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return "seafbak " + v
	}
	return "seafbak (unknown version)"
}

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

func (c *syncCmd) run(e *env) int {
	// A typo in one id must not leave the others half done: refuse them all first, like
	// restore and verify do.
	for _, id := range c.Repos {
		if err := object.CheckRepoID(id); err != nil {
			fmt.Fprintln(e.stderr, "seafbak sync:", err)
			return exitCantRun
		}
	}
	w, err := wire(e, c.Force)
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak sync:", err)
		return exitCantRun
	}
	defer w.closeAll()
	code := exitOK
	for _, id := range c.Repos {
		start := time.Now()
		res, err := w.engine.Sync(e.ctx, id)
		if err != nil {
			fmt.Fprintln(e.stderr, "seafbak:", err)
			code = exitFailed
			continue
		}
		fmt.Fprintln(e.stdout, describe(res, time.Since(start)))
	}
	return code
}

// describe is the one line sync prints per library.
func describe(r seafsync.Result, took time.Duration) string {
	switch {
	case r.Deleted:
		return fmt.Sprintf("%s %s: deleted on the primary; backup kept at head %s", r.RepoID, r.Name, r.Head)
	case r.UpToDate:
		return fmt.Sprintf("%s %s: up to date at %s", r.RepoID, r.Name, r.Head)
	}
	s := fmt.Sprintf("%s %s: synced to %s: %s, %s, %s, %s in %.2fs", r.RepoID, r.Name, r.Head,
		plural(r.Commits, "commit"), plural(r.FSObjects, "fs object"), plural(r.Blocks, "block"), humanBytes(r.Bytes), took.Seconds())
	if len(r.Holes) > 0 {
		s += fmt.Sprintf("; %d holes recorded (see seafbak status)", len(r.Holes))
	}
	if r.Truncated > 0 {
		s += fmt.Sprintf("; %d old commits without trees (history truncated on the primary)", r.Truncated)
	}
	return s
}

var humanBytes = scan.HumanBytes

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func (c *scanCmd) run(e *env) int {
	w, err := wire(e, false)
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak scan:", err)
		return exitCantRun
	}
	defer w.closeAll()
	s := &scan.Scanner{Engine: w.engine, Catalog: w.catalog, State: w.state, Log: e.log, Parallel: e.cfg.Parallel}
	sum, err := s.Run(e.ctx)
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak:", err)
		return exitCantRun
	}
	fmt.Fprintln(e.stdout, sum.String())
	if sum.Failed > 0 {
		return exitFailed
	}
	return exitOK
}

func (c *statusCmd) run(e *env) int {
	st, err := state.Open(e.cfg.State)
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak status:", err)
		return exitCantRun
	}
	var cat primary.Catalog
	if !c.Offline {
		pdb, err := openDB(e.ctx, "primary", e.cfg.Primary.DB)
		if err != nil {
			fmt.Fprintf(e.stderr, "seafbak status: %v (use --offline to report from the state alone)\n", err)
			return exitCantRun
		}
		defer pdb.Close()
		cat = primary.NewDB(pdb)
	}
	rep, err := scan.Status(e.ctx, cat, st)
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak status:", err)
		return exitCantRun
	}
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(e.stdout)
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "seafbak status:", err)
		return exitCantRun
	}
	if !rep.Healthy() {
		return exitFailed
	}
	return exitOK
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
