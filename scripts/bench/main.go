// Command bench measures seafbak against the tools admins use today, on generated
// Seafile data, and prints the figures. Run it with scripts/bench.sh.
//
// Every seafbak figure is a whole process (start, config, queries, copy, fsync,
// metadata), timed from outside, with its CPU-seconds (user+sys) and peak RSS from the
// child's rusage. Each measurement is repeated -runs times and reported as median
// [min..max] of wall time, median CPU-seconds and the largest peak RSS; a seafbak figure
// also says how it compares with rsync -a of the same objects in the same run. CPU-seconds
// are the steadier figure on a shared machine. The page cache is warm: the primary's files
// were just written by the generator.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/seafgen"
	"seafbak/internal/seafhttptest"
	"seafbak/sync/primary"
)

var (
	seafbakBin = flag.String("seafbak", "", "seafbak binary")
	baseline   = flag.String("baseline", "", "another seafbak binary (an older build) to measure beside -seafbak in the same runs, for before/after figures")
	workDir    = flag.String("dir", "", "work directory (default: a temp dir, removed at the end)")
	runs       = flag.Int("runs", 3, "repetitions of each measurement")
	firstFiles = flag.Int("first-files", 10_000, "files in the first-backup library")
	firstBytes = flag.Int64("first-bytes", 1<<30, "bytes in the first-backup library")
	bigFiles   = flag.Int("big-files", 100_000, "files in the large library of the one-file-change test")
	smallFiles = flag.Int("small-files", 1_000, "files in the small library of the one-file-change test")
	manyFiles  = flag.Int("many-files", 100_000, "files (4 KiB each) in the many-small-files first-backup library")
	hugeFiles  = flag.Int("huge-files", 2_000_000, "files (64 bytes each) in the huge library of the memory test")
	libraries  = flag.Int("libraries", 10_000, "libraries in the scan/status test")
	only       = flag.String("only", "first,readback,many,change,scan", "which parts to run: first (1 GiB-style first backup), readback (verify, restore of it), many (first backup of many small files), change (one-file change), scan (many libraries), firstscan (only the first scan of many libraries, -runs times, beside -baseline), huge (peak RSS of a first backup, one-file changes and a repair of a -huge-files library; not in the default set: ~40 GiB of disk and an hour at 2 million files)")
	straceRun  = flag.Bool("strace", false, "after the timed runs of each first backup, run seafbak once more under strace -c -f and print its syscall counts")
	sources    = flag.String("sources", "dir,http", "primary sources to measure: dir (data dir), http (sync protocol over loopback), wan (http through a proxy adding -rtt)")
	libFiles   = flag.Int("library-files", 1, "firstscan: files in each library (100 to a folder past the first), to measure a first scan of many large libraries (peak RSS)")
	newTokens  = flag.Bool("new-tokens", false, "firstscan: start each run over HTTP with no library tokens in the primary's RepoUserToken, as the first backup of a server does (otherwise only the first run creates them)")
	watchIdle  = flag.Duration("watch-idle", 20*time.Second, "firstscan -watch: once all is backed up, how long watch is left polling, to time its CPU (and the file server's) when nothing changes")
	withWatch  = flag.Bool("watch", false, "firstscan: also time seafbak watch backing up the same new libraries (from its start to its last \"change backed up\"), after each scan")
	rtt        = flag.Duration("rtt", 5*time.Millisecond, "round-trip time the wan source adds")
)

const syncToken = "bench-sync-token-0123456789abcdef"

type sample struct {
	wall time.Duration
	cpu  time.Duration // user+sys of the child
	rss  int64         // KiB
}

type figure struct {
	name    string
	samples []sample
}

func (f figure) String() string {
	w, c := f.medians()
	var minW, maxW time.Duration = -1, 0
	var maxRSS int64
	for _, x := range f.samples {
		if minW < 0 || x.wall < minW {
			minW = x.wall
		}
		maxW = max(maxW, x.wall)
		maxRSS = max(maxRSS, x.rss)
	}
	out := fmt.Sprintf("%-66s %8.3fs [%.3f..%.3f] n=%d", f.name, w.Seconds(), minW.Seconds(), maxW.Seconds(), len(f.samples))
	if maxW == 0 { // a CPU figure alone
		out = fmt.Sprintf("%-66s %28s n=%d", f.name, "", len(f.samples))
	}
	if c > 0 {
		out += fmt.Sprintf("  cpu %7.2fs", c.Seconds())
	}
	if maxRSS > 0 {
		out += fmt.Sprintf("  peak RSS %6.1f MiB", float64(maxRSS)/1024)
	}
	// Ratios to rsync -a of the same objects, measured in the same runs.
	if group, _, ok := strings.Cut(f.name, ": "); ok && maxW > 0 && strings.Contains(f.name, "seafbak") {
		for _, r := range figures {
			if r.name == group+": rsync -a" {
				rw, rc := r.medians()
				out += fmt.Sprintf("  (%.2fx rsync wall", w.Seconds()/rw.Seconds())
				if rc > 0 && c > 0 {
					out += fmt.Sprintf(", %.2fx rsync cpu", c.Seconds()/rc.Seconds())
				}
				out += ")"
			}
		}
	}
	return out
}

// medians are the median wall time and the median CPU-seconds.
func (f figure) medians() (wall, cpu time.Duration) {
	w := make([]time.Duration, len(f.samples))
	c := make([]time.Duration, len(f.samples))
	for i, x := range f.samples {
		w[i], c[i] = x.wall, x.cpu
	}
	slices.Sort(w)
	slices.Sort(c)
	return w[len(w)/2], c[len(c)/2]
}

var figures []figure

func record(name string, s sample) {
	// Each sample goes to the log as well: a long run stopped early keeps what it measured.
	log.Printf("%s: %.3fs, cpu %.2fs, peak RSS %.1f MiB", name, s.wall.Seconds(), s.cpu.Seconds(), float64(s.rss)/1024)
	for i := range figures {
		if figures[i].name == name {
			figures[i].samples = append(figures[i].samples, s)
			return
		}
	}
	figures = append(figures, figure{name: name, samples: []sample{s}})
}

// timed runs a command, failing the bench if it fails, and returns its wall time,
// CPU-seconds and peak RSS. The command runs under GNU time, which reports the child's
// rusage (user, sys, maxrss from wait4): the rusage of a child forked straight from this
// (large) process would count this process's pages in the child's peak.
func timed(name string, args ...string) sample {
	usage, err := os.CreateTemp("", "rusage")
	must(err)
	usage.Close()
	defer os.Remove(usage.Name())
	cmd := exec.Command("/usr/bin/time", append([]string{"-o", usage.Name(), "-f", "%M %U %S", name}, args...)...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	wall := time.Since(start)
	if err != nil {
		log.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	data, err := os.ReadFile(usage.Name())
	must(err)
	var rss int64
	var user, sys float64
	if _, err := fmt.Sscan(string(data), &rss, &user, &sys); err != nil {
		log.Fatalf("GNU time's output %q: %v", data, err)
	}
	return sample{wall: wall, cpu: time.Duration((user + sys) * float64(time.Second)), rss: rss}
}

// freshBackup is a new backup of db from src, as e.backup; with -new-tokens over HTTP
// the primary first forgets every library token, as before a server's first backup.
func (e *env) freshBackup(src, db, dir string) (cfg, backupDir string) {
	cfg, backupDir = e.backup(src, db, dir, "batch")
	if *newTokens && src != "dir" {
		pdb := mustOpen(e.srv, db)
		_, err := pdb.Exec("DELETE FROM RepoUserToken")
		must(err)
		pdb.Close()
	}
	return cfg, backupDir
}

// watchedUntil runs seafbak watch until it has logged n libraries backed up: its wall
// time is until the n-th, its CPU and peak RSS those of the whole process, stopped then.
func watchedUntil(bin, cfg string, n, dbPID int) (s, idle, serverIdle, dbIdle sample) {
	cmd := exec.Command(bin, "--config", cfg, "-v", "watch")
	stderr, err := cmd.StderrPipe()
	must(err)
	start := time.Now()
	must(cmd.Start())
	lines := bufio.NewScanner(stderr)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	done, failed := 0, 0
	for done < n && lines.Scan() {
		switch line := lines.Text(); {
		case strings.Contains(line, "change backed up"):
			done++
		case strings.Contains(line, "level=ERROR"):
			if failed++; failed <= 3 {
				log.Printf("seafbak watch: %s", line)
			}
		}
	}
	wall := time.Since(start)
	// Not the rusage's maxrss: for a child started by vfork it counts this process's
	// memory at the fork too.
	rss := peakRSS(cmd.Process.Pid)
	go io.Copy(io.Discard, stderr)
	if done == n && *watchIdle > 0 {
		// What watch costs once all is backed up: its polls, and the test file server's
		// (this process's) answers to them.
		self, server, db := procCPU(cmd.Process.Pid), selfCPU(), procCPU(dbPID)
		time.Sleep(*watchIdle)
		idle = sample{cpu: procCPU(cmd.Process.Pid) - self}
		serverIdle = sample{cpu: selfCPU() - server}
		dbIdle = sample{cpu: procCPU(dbPID) - db}
	}
	must(cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil || done < n {
		log.Fatalf("seafbak watch: %d of %d libraries backed up: %v", done, n, err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	// The CPU of the whole process, idle time included: the idle CPU is subtracted.
	return sample{wall: wall, cpu: time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) - idle.cpu, rss: rss}, idle, serverIdle, dbIdle
}

// peakRSS is a running process's peak resident set size so far, in KiB (VmHWM).
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(err)
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			must(err)
			return kib
		}
	}
	log.Fatalf("/proc/%d/status has no VmHWM", pid)
	return 0
}

// selfCPU is this process's CPU time so far: over HTTP the test file server runs here.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's CPU time so far (user+sys from /proc/PID/stat).
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	must(err)
	// The command name may hold spaces: fields are counted after its closing parenthesis.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	var utime, stime int64
	if _, err := fmt.Sscan(fields[11]+" "+fields[12], &utime, &stime); err != nil {
		log.Fatalf("/proc/%d/stat: %v", pid, err)
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// seafbaks are the binaries measured in run number run: -seafbak, and -baseline under
// its own label. The order alternates from run to run: whichever ran second in a pair
// met a host warmed (page cache, MariaDB's buffers, the CPU's clock) by the first, and a
// fixed order put that in every before/after figure.
func seafbaks(run int) []struct{ label, bin string } {
	out := []struct{ label, bin string }{{"", *seafbakBin}}
	if *baseline != "" {
		out = append(out, struct{ label, bin string }{", baseline", *baseline})
		if run%2 == 1 {
			out[0], out[1] = out[1], out[0]
		}
	}
	return out
}

// firstBackups times cp -a and rsync -a of the primary's storage and a first seafbak
// sync from each source, interleaved, runs times; over HTTP it also records the CPU
// the in-process file server spent answering.
func (e *env) firstBackups(group, db, dir, repoID string, files int) {
	for i := 0; i < *runs; i++ {
		dst := filepath.Join(e.root, fmt.Sprintf("cp-%d", e.n))
		e.n++
		e.settle()
		record(group+": cp -a", timed("cp", "-a", filepath.Join(dir, "storage"), dst))
		must(os.RemoveAll(dst))
		e.rsyncs(group, dir)
		for _, src := range e.sources {
			for _, b := range seafbaks(i) {
				cfg, backupDir := e.backup(src, db, dir, "batch")
				e.settle()
				before := selfCPU()
				s := timed(b.bin, "--config", cfg, "sync", repoID)
				server := selfCPU() - before
				record(group+": seafbak sync ["+src+b.label+"]", s)
				if src != "dir" {
					record(group+": test file server's CPU during seafbak sync ["+src+b.label+"]", sample{cpu: server})
				}
				must(os.RemoveAll(filepath.Dir(backupDir)))
			}
		}
	}
	if !*straceRun {
		return
	}
	for _, src := range e.sources {
		for _, b := range seafbaks(0) {
			cfg, backupDir := e.backup(src, db, dir, "batch")
			out := filepath.Join(e.root, "strace.txt")
			timed("strace", "-c", "-f", "-o", out, b.bin, "--config", cfg, "sync", repoID)
			text, err := os.ReadFile(out)
			must(err)
			straces = append(straces, fmt.Sprintf("%s: seafbak sync [%s%s] under strace -c -f (%d files):\n%s", group, src, b.label, files, perFile(string(text), files)))
			must(os.RemoveAll(filepath.Dir(backupDir)))
		}
	}
}

// rsyncs times rsync -a of the primary's storage in dir, and rsync -a followed by a
// syncfs of the filesystem (coreutils' sync -f): what rsync would take to make its copy
// durable, as seafbak does before it records a head. Each starts from a settled
// filesystem, and its copy is removed.
func (e *env) rsyncs(group, dir string) {
	storage := filepath.Join(dir, "storage") + "/"
	for _, c := range []struct{ label, script string }{
		{"rsync -a", `exec rsync -a "$1" "$2"`},
		{"rsync -a, then sync -f", `rsync -a "$1" "$2" && sync -f "$2"`},
	} {
		dst := filepath.Join(e.root, fmt.Sprintf("rsync-%d", e.n))
		e.n++
		e.settle()
		record(group+": "+c.label, timed("sh", "-c", c.script, "sh", storage, dst+"/"))
		must(os.RemoveAll(dst))
	}
}

// settle flushes the work directory's filesystem, untimed, before a tool is timed: the
// copy the previous tool wrote (and its deletion) would otherwise still be dirty, and
// be written back during the next tool's run, charged to a seafbak that flushes (its
// syncfs covers the whole filesystem) and to nothing else.
func (e *env) settle() {
	f, err := os.Open(e.root)
	must(err)
	defer f.Close()
	must(unix.Syncfs(int(f.Fd())))
}

// straces are strace -c summaries, printed after the figures.
var straces []string

// perFile keeps strace -c's header and its busiest lines, each with its calls per file.
func perFile(summary string, files int) string {
	var b strings.Builder
	lines := strings.Split(strings.TrimSpace(summary), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		// % time, seconds, usecs/call, calls, [errors,] syscall
		if i < 2 || len(f) < 5 || i > 16 && f[len(f)-1] != "total" {
			if i < 2 {
				b.WriteString(l + "\n")
			}
			continue
		}
		calls, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s   %6.2f per file\n", l, float64(calls)/float64(files))
	}
	return b.String()
}

type env struct {
	srv     *mariadbtest.Server
	root    string
	n       int
	sources []string
	servers map[string]*seafhttptest.Server // by primary data dir
}

// backup makes a fresh backup side (database, data dir, state) for a primary and
// returns its config file.
func (e *env) backup(source, primaryDB, primaryDir, durability string) (cfg, dataDir string) {
	e.n++
	name := fmt.Sprintf("bench_b%d", e.n)
	must(e.srv.CreateDatabase(name, mariadbtest.SchemaFile("seafile.sql")))
	dir := filepath.Join(e.root, name)
	dataDir = filepath.Join(dir, "seafile-data")
	cfg = filepath.Join(dir, "seafbak.yml")
	must(os.MkdirAll(dir, 0o755))
	objects := "data_dir: " + primaryDir
	switch source {
	case "http":
		objects = fmt.Sprintf("url: %s\n  sync_token: %s", e.fileServer(primaryDB, primaryDir).URL(), syncToken)
	case "wan":
		objects = fmt.Sprintf("url: %s\n  sync_token: %s", startDelayProxy(e.fileServer(primaryDB, primaryDir).URL(), *rtt), syncToken)
	}
	text := fmt.Sprintf("primary:\n  db: \"root@unix(%s)/%s\"\n  %s\nbackup:\n  data_dir: %s\n  db: \"root@unix(%s)/%s\"\n  durability: %s\nstate: %s\n",
		e.srv.Socket, primaryDB, objects, dataDir, e.srv.Socket, name, durability, filepath.Join(dir, "state"))
	must(os.WriteFile(cfg, []byte(text), 0o600))
	return cfg, dataDir
}

// fileServer serves a primary over the sync protocol on loopback, in this process (the
// real file server would take CPU on its own machine; here both share two cores).
func (e *env) fileServer(primaryDB, primaryDir string) *seafhttptest.Server {
	if s := e.servers[primaryDir]; s != nil {
		return s
	}
	// Token and permission lookups cached as the real file server does (2 hours).
	s := seafhttptest.New(primaryDir, mustOpen(e.srv, primaryDB), seafhttptest.Options{Prefix: "/seafhttp", CacheTTL: 2 * time.Hour})
	_, err := s.Start()
	must(err)
	e.servers[primaryDir] = s
	return s
}

// fsIDList times one fs-id-list request: the server-side tree diff the protocol offers
// instead of seafbak's own walk.
func (e *env) fsIDList(primaryDB, primaryDir, repoID, serverHead, clientHead string) (sample, int) {
	q := url.Values{"server-head": {serverHead}}
	if clientHead != "" {
		q.Set("client-head", clientHead)
	}
	req, err := http.NewRequest("GET", e.fileServer(primaryDB, primaryDir).URL()+"/repo/"+repoID+"/fs-id-list/?"+q.Encode(), nil)
	must(err)
	req.Header.Set("Seafile-Repo-Token", primary.Token(syncToken, repoID))
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	must(err)
	defer resp.Body.Close()
	var ids []string
	must(json.NewDecoder(resp.Body).Decode(&ids))
	if resp.StatusCode != 200 {
		log.Fatalf("fs-id-list: %s", resp.Status)
	}
	return sample{wall: time.Since(start)}, len(ids)
}

// primary makes a primary database and data dir.
func (e *env) primary(name string) (db, dir string) {
	must(e.srv.CreateDatabase(name, mariadbtest.SchemaFile("seafile.sql")))
	dir = filepath.Join(e.root, name)
	// A -dir given again still holds the last run's primary: the new one starts empty,
	// or rsync would copy every earlier run's libraries too.
	must(os.RemoveAll(dir))
	must(os.MkdirAll(filepath.Join(dir, "storage"), 0o755))
	return name, dir
}

func main() {
	flag.Parse()
	if *seafbakBin == "" {
		log.Fatal("give -seafbak")
	}
	root := *workDir
	if root == "" {
		var err error
		root, err = os.MkdirTemp("", "seafbak-bench")
		must(err)
		defer os.RemoveAll(root)
	}
	srv, err := mariadbtest.Start()
	must(err)
	defer srv.Stop()
	e := &env{srv: srv, root: root, sources: strings.Split(*sources, ","), servers: map[string]*seafhttptest.Server{}}
	defer func() {
		for _, s := range e.servers {
			s.Close()
		}
	}()
	parts := map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		parts[p] = true
	}
	host, _ := os.Hostname()
	fmt.Printf("seafbak bench on %s, %s, %d runs each, warm page cache\n", host, time.Now().UTC().Format(time.RFC3339), *runs)
	fmt.Printf("work directory %s: %s\n", root, describeFS(root))
	if parts["first"] || parts["readback"] {
		e.firstBackup(parts["first"], parts["readback"])
	}
	if parts["many"] {
		e.manySmallFiles()
	}
	if parts["change"] {
		e.oneFileChange()
	}
	if parts["scan"] {
		e.scanStatus()
	}
	if parts["firstscan"] {
		e.firstScans()
	}
	if parts["huge"] {
		e.hugeLibrary()
	}
	fmt.Println()
	for _, f := range figures {
		fmt.Println(f)
	}
	for _, s := range straces {
		fmt.Println()
		fmt.Print(s)
	}
}

func (e *env) firstBackup(first, readback bool) {
	ctx := context.Background()
	db, dir := e.primary("bench_first")
	g := seafgen.New(dir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "first"})
	must(err)
	t0 := time.Now()
	_, err = lib.CommitBulk("bulk", *firstFiles, *firstBytes, 1)
	must(err)
	must(lib.InsertRows(ctx, mustOpen(e.srv, db)))
	log.Printf("generated %d files, %d bytes in %s", *firstFiles, *firstBytes, time.Since(t0))
	label := fmt.Sprintf("(%d files, %.2f GiB)", *firstFiles, float64(*firstBytes)/(1<<30))
	if first {
		e.firstBackups("first backup "+label, db, dir, lib.ID, *firstFiles)
	}
	cfg, backupDir := e.backup("dir", db, dir, "per-object")
	record("first backup "+label+": seafbak sync [dir, per-object fsync]", timed(*seafbakBin, "--config", cfg, "sync", lib.ID))
	if !readback {
		return
	}
	// Reading the backup back: verify next to sha1sum and cat of the same block files,
	// then a restore of the whole library next to cp -a.
	blocks := filepath.Join(backupDir, "storage", "blocks")
	for i := 0; i < *runs; i++ {
		record("read back "+label+": seafbak verify", timed(*seafbakBin, "--config", cfg, "verify"))
		record("read back "+label+": seafbak verify --sample 0.05", timed(*seafbakBin, "--config", cfg, "verify", "--sample", "0.05"))
		record("read back "+label+": sha1sum of every block file", timed("sh", "-c", "find \"$1\" -type f -print0 | xargs -0 sha1sum >/dev/null", "sh", blocks))
		record("read back "+label+": cat of every block file", timed("sh", "-c", "find \"$1\" -type f -print0 | xargs -0 cat >/dev/null", "sh", blocks))
		for j, b := range seafbaks(i) { // interleaved with -baseline's
			what := "seafbak restore library"
			if b.label != "" {
				what += " [baseline]"
			}
			to := filepath.Join(e.root, fmt.Sprintf("restored%d-%d", i, j))
			record("read back "+label+": "+what, timed(b.bin, "--config", cfg, "restore", "library", lib.ID, "--to", to))
		}
	}
}

// manySmallFiles is the first backup of a library of many 4 KiB files, where the cost
// per object (syscalls, allocations, bookkeeping) rules, and memory shows whether it grows
// with the number of files.
func (e *env) manySmallFiles() {
	ctx := context.Background()
	db, dir := e.primary("bench_many")
	g := seafgen.New(dir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "many"})
	must(err)
	t0 := time.Now()
	_, err = lib.CommitBulk("bulk", *manyFiles, int64(*manyFiles)*4096, 3)
	must(err)
	must(lib.InsertRows(ctx, mustOpen(e.srv, db)))
	log.Printf("generated %d files of 4 KiB in %s", *manyFiles, time.Since(t0))
	e.firstBackups(fmt.Sprintf("first backup (%d files x 4 KiB)", *manyFiles), db, dir, lib.ID, *manyFiles)
}

func (e *env) oneFileChange() {
	ctx := context.Background()
	for _, files := range []int{*smallFiles, *bigFiles} {
		db, dir := e.primary(fmt.Sprintf("bench_change%d", files))
		pdb := mustOpen(e.srv, db)
		g := seafgen.New(dir)
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "change"})
		must(err)
		const seed = 7
		_, err = lib.CommitBulk("bulk", files, int64(files)*4096, seed)
		must(err)
		must(lib.InsertRows(ctx, pdb))
		type side struct {
			src, cfg, backupDir, copyDir string
		}
		var sides []side
		for _, src := range e.sources {
			cfg, backupDir := e.backup(src, db, dir, "batch")
			record(fmt.Sprintf("first backup of %d files x 4 KiB: seafbak sync [%s]", files, src), timed(*seafbakBin, "--config", cfg, "sync", lib.ID))
			copyDir := filepath.Join(e.root, fmt.Sprintf("rsync-change%d-%s", files, src))
			timed("rsync", "-a", filepath.Join(backupDir, "storage")+"/", copyDir+"/")
			sides = append(sides, side{src, cfg, backupDir, copyDir})
		}
		if slices.Contains(e.sources, "http") {
			s, n := e.fsIDList(db, dir, lib.ID, lib.Head, "")
			record(fmt.Sprintf("fs-id-list of the whole %d-file tree (%d ids), one request", files, n), s)
		}
		for i := 0; i < *runs; i++ {
			old := lib.Head
			path := seafgen.BulkPath(seed, files, (i*7919)%files)
			_, err := lib.Commit("one file", seafgen.Put(path, []byte(fmt.Sprintf("changed %d %d", i, time.Now().UnixNano()))))
			must(err)
			must(lib.InsertRows(ctx, pdb))
			for _, sd := range sides {
				record(fmt.Sprintf("one-file change, %d-file library: seafbak sync [%s]", files, sd.src), timed(*seafbakBin, "--config", sd.cfg, "sync", lib.ID))
			}
			// cron's scan when nothing changed since: one query of the primary's heads,
			// compared with the state.
			for _, sd := range sides {
				record(fmt.Sprintf("no change, %d-file library: seafbak scan [%s]", files, sd.src), timed(*seafbakBin, "--config", sd.cfg, "scan"))
			}
			if slices.Contains(e.sources, "http") {
				s, n := e.fsIDList(db, dir, lib.ID, lib.Head, old)
				record(fmt.Sprintf("fs-id-list of a one-file change, %d-file tree (%d ids)", files, n), s)
			}
			sd := sides[0]
			record(fmt.Sprintf("no change, %d-file store: rsync -a", files), timed("rsync", "-a", filepath.Join(sd.backupDir, "storage")+"/", sd.copyDir+"/"))
		}
	}
}

// hugeLibrary measures what memory does with a library's size (issue 10: peak RSS under
// 256 MiB at two million files): a first backup, one-file changes and a repair (verify
// --repair: every object re-read and hashed) of a generated library of -huge-files tiny
// files, 100 to a dir. Small files keep the disk to inodes: each file is still a block
// and an fs object, which is what the walk holds memory for.
func (e *env) hugeLibrary() {
	ctx := context.Background()
	db, dir := e.primary("bench_huge")
	pdb := mustOpen(e.srv, db)
	lib, err := seafgen.New(dir).NewLibrary(seafgen.LibraryOptions{Name: "huge"})
	must(err)
	const seed = 11
	t0 := time.Now()
	_, err = lib.CommitBulk("bulk", *hugeFiles, int64(*hugeFiles)*64, seed)
	must(err)
	must(lib.InsertRows(ctx, pdb))
	log.Printf("generated %d files of 64 bytes in %s", *hugeFiles, time.Since(t0))
	name := fmt.Sprintf("%d-file library", *hugeFiles)
	type side struct{ src, cfg, backupDir string }
	var sides []side
	for _, src := range e.sources {
		cfg, backupDir := e.backup(src, db, dir, "batch")
		record(fmt.Sprintf("first backup, %s: seafbak sync [%s]", name, src), timed(*seafbakBin, "--config", cfg, "sync", lib.ID))
		sides = append(sides, side{src, cfg, backupDir})
	}
	for i := 0; i < *runs; i++ {
		path := seafgen.BulkPath(seed, *hugeFiles, (i*7919)%*hugeFiles)
		_, err := lib.Commit("one file", seafgen.Put(path, []byte(fmt.Sprintf("changed %d %d", i, time.Now().UnixNano()))))
		must(err)
		must(lib.InsertRows(ctx, pdb))
		for _, sd := range sides {
			record(fmt.Sprintf("one-file change, %s: seafbak sync [%s]", name, sd.src), timed(*seafbakBin, "--config", sd.cfg, "sync", lib.ID))
		}
	}
	for _, sd := range sides {
		// One lost block makes verify --repair re-check the whole library after its
		// verify: both are measured in that one process.
		removeOneBlock(filepath.Join(sd.backupDir, "storage", "blocks"))
		record(fmt.Sprintf("verify, then repair (every object re-read and hashed), %s: seafbak verify --repair [%s]", name, sd.src),
			timed(*seafbakBin, "--config", sd.cfg, "verify", "--repair", lib.ID))
		must(os.RemoveAll(filepath.Dir(sd.backupDir)))
	}
}

// removeOneBlock deletes the first block file found under blocks.
func removeOneBlock(blocks string) {
	errFound := errors.New("found")
	err := filepath.WalkDir(blocks, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		must(os.Remove(p))
		return errFound
	})
	if !errors.Is(err, errFound) {
		log.Fatalf("no block to remove under %s: %v", blocks, err)
	}
}

// manyLibraries makes the primary name with -libraries libraries of files files each.
func (e *env) manyLibraries(name string, files int) (db, dir string) {
	ctx := context.Background()
	db, dir = e.primary(name)
	pdb := mustOpen(e.srv, db)
	g := seafgen.New(dir)
	t0 := time.Now()
	for i := 0; i < *libraries; i++ {
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("lib", i)})
		must(err)
		changes := []seafgen.Change{seafgen.Put("readme.txt", []byte(fmt.Sprint("library ", i)))}
		for f := 1; f < files; f++ {
			changes = append(changes, seafgen.Put(fmt.Sprintf("d%d/f%d.txt", f/100, f), []byte(fmt.Sprint("library ", i, " file ", f))))
		}
		_, err = lib.Commit("file", changes...)
		must(err)
		must(lib.InsertRows(ctx, pdb))
	}
	log.Printf("generated %d libraries in %s", *libraries, time.Since(t0))
	return db, dir
}

// firstScans times only the first scan of many new one-file libraries, -runs times
// from each source, each into a fresh backup, interleaved with -baseline; with -strace
// it runs each once more under strace -c -f and prints syscalls per library.
func (e *env) firstScans() {
	db, dir := e.manyLibraries("bench_firstscan", *libFiles)
	name := fmt.Sprintf("first scan of %d one-file libraries", *libraries)
	if *libFiles > 1 {
		name = fmt.Sprintf("first scan of %d libraries of %d files", *libraries, *libFiles)
	}
	// The first scan over HTTP also fills the file server's token and permission caches
	// (as a real server's first backup does): it is timed apart, so that the runs below
	// compare builds on equal terms whichever goes first.
	for _, src := range e.sources {
		if src == "dir" {
			continue
		}
		cfg, backupDir := e.backup(src, db, dir, "batch")
		record(name+": seafbak scan, file server's caches cold ["+src+"]", timed(*seafbakBin, "--config", cfg, "scan"))
		must(os.RemoveAll(filepath.Dir(backupDir)))
	}
	for i := 0; i < *runs; i++ {
		// The filesystem's share of a first scan (Seafile's layout makes about 8
		// directories and 5 files for each one-file library), in the same run.
		e.rsyncs(name, dir)
		for _, src := range e.sources {
			for _, b := range seafbaks(i) {
				cfg, backupDir := e.freshBackup(src, db, dir)
				e.settle()
				// On a small host the scan shares the cores with the test file server
				// (this process) and MariaDB (both databases): their CPU-seconds say how
				// much of the wall time is seafbak's.
				server, mariadb := selfCPU(), procCPU(e.srv.PID())
				s := timed(b.bin, "--config", cfg, "scan")
				server, mariadb = selfCPU()-server, procCPU(e.srv.PID())-mariadb
				record(name+": seafbak scan ["+src+b.label+"]", s)
				if src != "dir" {
					record(name+": test file server's CPU during seafbak scan [http"+b.label+"]", sample{cpu: server})
				}
				record(name+": MariaDB's CPU during seafbak scan ["+src+b.label+"]", sample{cpu: mariadb})
				must(os.RemoveAll(filepath.Dir(backupDir)))
				if *withWatch {
					cfg, backupDir := e.freshBackup(src, db, dir)
					e.settle()
					s, idle, serverIdle, dbIdle := watchedUntil(b.bin, cfg, *libraries, e.srv.PID())
					record(name+": seafbak watch until all backed up ["+src+b.label+"]", s)
					if *watchIdle > 0 {
						idleFor := fmt.Sprintf("%s idle", *watchIdle)
						record(name+": seafbak watch's CPU, all backed up, "+idleFor+" ["+src+b.label+"]", idle)
						if src != "dir" {
							record(name+": test file server's CPU during watch's "+idleFor+" ["+src+b.label+"]", serverIdle)
						}
						record(name+": MariaDB's CPU during watch's "+idleFor+" ["+src+b.label+"]", dbIdle)
					}
					must(os.RemoveAll(filepath.Dir(backupDir)))
				}
			}
		}
	}
	if !*straceRun {
		return
	}
	for _, src := range e.sources {
		for _, b := range seafbaks(0) {
			cfg, backupDir := e.backup(src, db, dir, "batch")
			out := filepath.Join(e.root, "strace.txt")
			timed("strace", "-c", "-f", "-o", out, b.bin, "--config", cfg, "scan")
			text, err := os.ReadFile(out)
			must(err)
			straces = append(straces, fmt.Sprintf("%s: seafbak scan [%s%s] under strace -c -f (per library):\n%s", name, src, b.label, perFile(string(text), *libraries)))
			must(os.RemoveAll(filepath.Dir(backupDir)))
		}
	}
}

func (e *env) scanStatus() {
	db, dir := e.manyLibraries("bench_scan", 1)
	for n, src := range e.sources {
		cfg, _ := e.backup(src, db, dir, "batch")
		record(fmt.Sprintf("first scan of %d one-file libraries: seafbak scan [%s]", *libraries, src), timed(*seafbakBin, "--config", cfg, "scan"))
		if n == 0 {
			e.dumpAndFailover(cfg, *libraries)
		}
		for i := 0; i < *runs; i++ {
			for _, b := range seafbaks(i) {
				label := src + b.label
				record(fmt.Sprintf("scan, %d unchanged libraries: seafbak scan [%s]", *libraries, label), timed(b.bin, "--config", cfg, "scan"))
				record(fmt.Sprintf("status, %d libraries: seafbak status [%s]", *libraries, label), timed(b.bin, "--config", cfg, "status"))
				record(fmt.Sprintf("status, %d libraries: seafbak status --json [%s]", *libraries, label), timed(b.bin, "--config", cfg, "status", "--json"))
				if n == 0 {
					record(fmt.Sprintf("verify, %d libraries: seafbak verify%s", *libraries, b.label), timed(b.bin, "--config", cfg, "verify"))
				}
			}
		}
	}
}

// dumpAndFailover times seafbak dump of the primary's seafile database (rows for
// every library) and a restore server onto a second, fresh database server.
func (e *env) dumpAndFailover(cfg string, libs int) {
	dumpDir := filepath.Join(e.root, "dumps")
	text, err := os.ReadFile(cfg)
	must(err)
	withDump := string(text) + "dump:\n  dir: " + dumpDir + "\n  keep: 2\n"
	must(os.WriteFile(cfg, []byte(withDump), 0o600))
	for i := 0; i < *runs; i++ {
		record(fmt.Sprintf("seafbak dump, seafile db of %d libraries", libs), timed(*seafbakBin, "--config", cfg, "dump"))
	}
	for _, b := range seafbaks(0) {
		other, err := mariadbtest.Start()
		must(err)
		failover := strings.Replace(withDump, "root@unix("+e.srv.Socket+")/bench_b", "root@unix("+other.Socket+")/bench_b", 1)
		failoverCfg := cfg + ".failover"
		must(os.WriteFile(failoverCfg, []byte(failover), 0o600))
		record(fmt.Sprintf("seafbak restore server, %d libraries, fresh database server%s", libs, b.label), timed(b.bin, "--config", failoverCfg, "restore", "server"))
		must(other.Stop())
		// The failover shares the state, which now refuses every sync: a test
		// failover's mark goes, as restore server's hint says, for the runs below.
		must(os.Remove(filepath.Join(filepath.Dir(cfg), "state", "failed-over.json")))
	}
}

func mustOpen(srv *mariadbtest.Server, db string) *sqlDB {
	d, err := srv.Open(db)
	must(err)
	return d
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
