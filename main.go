// Command seafbak keeps a real-time, consistent, full-history backup of a Seafile server.
// Package main only parses arguments, wires the packages together and prints: each
// command is a kong command struct with a Run method, in its own cmd_*.go file; exit.go
// holds the one table of exit codes and the one place errors are printed. The work is
// done by sync (the engine), scan, restore, dump and state.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"

	"seafbak/config"
	"seafbak/metrics"
	"seafbak/state"
)

type cli struct {
	Config      string           `help:"Config file (default: ${default_config})." placeholder:"FILE" env:"SEAFBAK_CONFIG"`
	Verbose     bool             `short:"v" help:"Log each library's progress, not only warnings and errors." xor:"level"`
	Quiet       bool             `short:"q" help:"Log errors only." xor:"level"`
	Debug       bool             `help:"Log everything, including retried requests to the primary." xor:"level"`
	LogFormat   string           `help:"Log format on stderr: text or json." enum:"text,json" default:"text" env:"SEAFBAK_LOG_FORMAT"`
	MetricsFile string           `help:"After the command, rewrite this .prom file for node_exporter's textfile collector (default: metrics.file of the config)." placeholder:"PATH" env:"SEAFBAK_METRICS_FILE"`
	Version     kong.VersionFlag `help:"Print the version and exit."`

	Sync    syncCmd    `cmd:"" help:"Back up libraries now (the primary's change hook runs this); waits for a sync of the same library already running."`
	Scan    scanCmd    `cmd:"" help:"Back up every new or changed library (run from cron every few minutes)."`
	Status  statusCmd  `cmd:"" help:"Show where every library's backup stands. Exit 0 all healthy, 1 some failed or have holes, 2 could not tell."`
	Dump    dumpCmd    `cmd:"" help:"Dump the primary's ccnet, seafile (all but the three tables sync keeps live) and seahub databases, each in one consistent snapshot, into dump.dir; keep the last dump.keep."`
	Verify  verifyCmd  `cmd:"" help:"Check the backup store: every object of every backed-up head's full history present and matching its id. Exit 0 ok, 1 problems or holes found."`
	Restore restoreCmd `cmd:"" help:"Get backed-up data back: one library at any point of its history, or the whole server (failover)."`
	Watch   watchCmd   `cmd:"" help:"Run as the primary's change hook (a systemd service): poll the primary's heads and back up each library that changed, until SIGTERM or SIGINT (exit 0)."`
	Store   storeCmd   `cmd:"" help:"Work on the backup store as a whole: copy it into another store (filesystem to S3 and back)."`

	InstallCompletions kongplete.InstallCompletions `cmd:"" help:"Print the bash line that completes seafbak's commands and flags (complete -C ...): add it to ~/.bashrc, or eval it."`
}

// env is what a command runs with; kong hands it to each command's Run.
type env struct {
	ctx    context.Context
	cfg    *config.Config
	log    *slog.Logger
	stdout io.Writer
	stderr io.Writer
	// run is this command's figures for the metrics file; commands fill in what they
	// copied or checked.
	run *metrics.Run
}

// memoryLimit is a soft heap limit. A sync holds only its walk's frontier (about 30 MiB
// even at two million files), so it matters for the commands whose memory grows with a
// library: verify remembers every object it checked (about 165 MiB at two million
// files), and above the limit Go's GC runs nearly continuously, trading CPU for memory.
// GOMEMLIMIT overrides it.
const memoryLimit = 160 << 20

func main() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signalContext()
	stopProfile := startProfiles()
	code := runContext(ctx, os.Args[1:], os.Stdout, journalStderr(os.Stderr))
	stopProfile()
	stop()
	os.Exit(code)
}

// signalContext is cancelled by SIGINT or SIGTERM, with the signal as its cause, so the
// run stops where it is (nothing half-recorded) and exits 130 or 143.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		if s, ok := <-ch; ok {
			cancel(interrupt{sig: s.(syscall.Signal)})
		}
	}()
	return ctx, func() { signal.Stop(ch); close(ch); cancel(nil) }
}

// run is the whole CLI without the process around it, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
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
	// Shell completion: the shell runs seafbak with COMP_LINE set; answer and stop.
	answerCompletion(parser, func(code int) { exit = code; panic(exitSignal{}) })
	if exit >= 0 {
		return exit
	}
	kctx, perr := parseArgs(parser, args)
	if exit >= 0 { // --help or --version
		return exit
	}
	if perr != nil {
		// Parsing failed, so c may not hold --log-format: asked for by the arguments
		// or the environment, a log shipper still gets JSON.
		if jsonAsked(args) {
			writeJSONError(stderr, "", perr.Error(), "")
		} else {
			fmt.Fprintln(stderr, "seafbak:", perr)
		}
		return exitCantRun
	}
	cmd := commandName(kctx.Command())
	log := newLogger(stderr, &c)
	cfg, err := config.Load(config.Resolve(c.Config))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		err = fmt.Errorf("%w (give one with --config or SEAFBAK_CONFIG)", err)
	}
	if err != nil {
		return reportAs(stderr, ctx, cmd, cantRun(err), c.LogFormat == "json")
	}
	start := time.Now()
	e := &env{ctx: ctx, cfg: cfg, log: log, stdout: stdout, stderr: stderr, run: &metrics.Run{Command: cmd, Start: start}}
	code := reportAs(stderr, ctx, cmd, kctx.Run(e), c.LogFormat == "json")
	if path := cmp.Or(c.MetricsFile, cfg.MetricsFile); path != "" {
		e.run.Duration, e.run.ExitCode = time.Since(start), code
		if e.run.ChangeTold && code == exitFailed {
			e.run.ExitCode = exitOK
		}
		if err := writeMetrics(path, cfg, e.run); err != nil {
			// The backup itself is as the exit code says; monitoring will notice the
			// stale file, and cron mails this line.
			if c.LogFormat == "json" {
				writeJSONError(stderr, cmd, "metrics file: "+err.Error(), "")
			} else {
				fmt.Fprintf(stderr, "seafbak %s: metrics file: %v\n", cmd, err)
			}
		}
	}
	return code
}

// jsonAsked reports whether JSON logs were asked for, read from the arguments and the
// environment as kong would.
func jsonAsked(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "--log-format=json", a == "--log-format" && i+1 < len(args) && args[i+1] == "json":
			return true
		case strings.HasPrefix(a, "--log-format"):
			return false
		}
	}
	return os.Getenv("SEAFBAK_LOG_FORMAT") == "json"
}

func writeMetrics(path string, cfg *config.Config, run *metrics.Run) error {
	if !filepath.IsAbs(path) {
		// As metrics.file in the config: under cron a relative path lands in root's
		// home, where node_exporter never looks. Not the command's failure: the backup
		// is as its exit code says.
		return fmt.Errorf("%q (--metrics-file or SEAFBAK_METRICS_FILE) is not an absolute path: give one ending in .prom", path)
	}
	// The state is read, never made: a command that refused a state directory not
	// there (its disk not mounted) must not leave one behind through its metrics.
	st, err := state.OpenExisting(cfg.State)
	if err != nil {
		return err
	}
	return metrics.Write(path, st, run, time.Now())
}

// newLogger logs to stderr at the level the flags ask for: warnings by default, so cron
// mails only what matters.
func newLogger(w io.Writer, c *cli) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case c.Debug:
		level = slog.LevelDebug
	case c.Verbose:
		level = slog.LevelInfo
	case c.Quiet:
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	j, journal := w.(*journalStream)
	var lw *levelWriter
	if journal {
		lw = &levelWriter{j: j}
		w = lw
	}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	if journal {
		h = journalHandler{inner: h, w: lw}
	}
	return slog.New(h)
}

type exitSignal struct{}

// answerCompletion answers a shell's completion request (COMP_LINE set), if any.
func answerCompletion(p *kong.Kong, exit func(int)) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exitSignal); !ok {
				panic(r)
			}
		}
	}()
	kongplete.Complete(p, kongplete.WithExitFunc(exit), kongplete.WithPredictor("file", complete.PredictFiles("*")))
}

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

// buildVersion is set at build time (-ldflags "-X main.buildVersion=v1.2.3"); without it
// the module version and VCS revision Go records in the binary are used.
var buildVersion string

func version() string {
	v := buildVersion
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "(unknown version)"
	}
	if ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) >= 12 {
			v += " " + rev[:12]
			if dirty {
				v += "-dirty"
			}
		}
	}
	return "seafbak " + v
}
