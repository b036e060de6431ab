// Package s3bench measures seafbak's backup store on S3 against rclone, on generated
// Seafile data and a real S3 server (VersityGW, internal/s3test), in the same run:
//
//   - first backup of a library (default 10 000 files, 1 GiB) from the primary's data
//     dir to three fresh buckets, next to `rclone copy` of the same storage dir to a
//     fresh bucket of the same server, interleaved, -runs times;
//   - a one-file change synced to S3, -changes times;
//   - `seafbak verify` of the whole library from S3, -runs times.
//
// Each figure is a whole process timed from outside under GNU time: wall, CPU-seconds
// (user+sys) and peak RSS of seafbak or rclone, plus the CPU-seconds the S3 server spent
// meanwhile (from /proc) and its peak RSS (VmHWM, reset before each command), and the
// 1-minute load average when each command started. Run it with scripts/s3bench.sh, or:
//
//	go test -run '^$' -bench S3 -benchtime 1x -timeout 2h ./scripts/s3bench -args -seafbak /path/to/seafbak
//
// It is a benchmark so that `go test ./...` never runs it.
package s3bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/s3test"
	"seafbak/internal/seafgen"
)

// TestMain is, in the child s3test starts, the S3 server.
func TestMain(m *testing.M) {
	s3test.ServeIfChild()
	os.Exit(m.Run())
}

var (
	seafbakBin = flag.String("seafbak", "", "seafbak binary (default: built from this checkout)")
	files      = flag.Int("files", 10_000, "files in the library")
	totalBytes = flag.Int64("bytes", 1<<30, "bytes in the library")
	runs       = flag.Int("runs", 3, "first backups (each of seafbak and rclone) and verifies")
	changes    = flag.Int("changes", 5, "one-file changes synced")
	parts      = flag.String("only", "first,change,verify", "what to measure")
	straceTo   = flag.String("strace", "", "after the timed one-file changes, sync one more under strace -f -tt -T into this file, with --debug logs in FILE.log")
)

type sample struct {
	wall, cpu, serverCPU time.Duration
	rss, serverRSS       int64 // KiB
	load                 float64
}

type figure struct {
	name    string
	samples []sample
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func (f figure) stat(get func(sample) time.Duration) (med, lo, hi time.Duration) {
	var xs []time.Duration
	for _, s := range f.samples {
		xs = append(xs, get(s))
	}
	return median(xs), slices.Min(xs), slices.Max(xs)
}

func (f figure) String() string {
	w, lo, hi := f.stat(func(s sample) time.Duration { return s.wall })
	c, _, _ := f.stat(func(s sample) time.Duration { return s.cpu })
	sc, _, _ := f.stat(func(s sample) time.Duration { return s.serverCPU })
	var rss, srss int64
	var loads []float64
	for _, s := range f.samples {
		rss, srss = max(rss, s.rss), max(srss, s.serverRSS)
		loads = append(loads, s.load)
	}
	return fmt.Sprintf("%-44s wall %7.3fs [%.3f..%.3f] n=%d  cpu %6.2fs  peak RSS %6.1f MiB | S3 server cpu %6.2fs, peak RSS %6.1f MiB | load %.1f..%.1f",
		f.name, w.Seconds(), lo.Seconds(), hi.Seconds(), len(f.samples), c.Seconds(), float64(rss)/1024,
		sc.Seconds(), float64(srss)/1024, slices.Min(loads), slices.Max(loads))
}

type bench struct {
	b       *testing.B
	root    string
	db      *mariadbtest.Server
	s3      *s3test.Server
	pid     int // the S3 server's
	rclone  []string
	n       int
	figures []*figure
}

func (e *bench) record(name string, s sample) {
	for _, f := range e.figures {
		if f.name == name {
			f.samples = append(f.samples, s)
			return
		}
	}
	e.figures = append(e.figures, &figure{name: name, samples: []sample{s}})
}

func (e *bench) fig(name string) *figure {
	for _, f := range e.figures {
		if f.name == name {
			return f
		}
	}
	return nil
}

// timed runs a command under GNU time (the child's own rusage: user, sys, maxrss) and
// reads the S3 server's CPU time around it.
func (e *bench) timed(env []string, name string, args ...string) sample {
	e.b.Helper()
	usage := filepath.Join(e.root, "rusage")
	cmd := exec.Command("/usr/bin/time", append([]string{"-o", usage, "-f", "%M %U %S", name}, args...)...)
	cmd.Env = env
	if env == nil {
		cmd.Env = os.Environ()
	}
	load := loadAvg()
	// Reset the server's peak RSS (VmHWM) so it is this command's.
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", e.pid), []byte("5"), 0)
	before := procCPU(e.b, e.pid)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	serverCPU := procCPU(e.b, e.pid) - before
	if err != nil {
		e.b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	data, err := os.ReadFile(usage)
	if err != nil {
		e.b.Fatal(err)
	}
	var rss int64
	var user, sys float64
	if _, err := fmt.Sscan(string(data), &rss, &user, &sys); err != nil {
		e.b.Fatalf("GNU time's output %q: %v", data, err)
	}
	return sample{wall: wall, cpu: time.Duration((user + sys) * float64(time.Second)), rss: rss,
		serverCPU: serverCPU, serverRSS: procHWM(e.pid), load: load}
}

func loadAvg() float64 {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux
// architecture Go supports.
const clockTick = 100

func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTick
}

func procHWM(pid int) int64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// serverPID finds the S3 server: this process's child running the test binary as the
// server (s3test starts it with -test.run=^$).
func serverPID(b *testing.B) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	self := os.Getpid()
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if strings.Contains(string(env), "SEAFBAK_S3TEST_SERVE=1") {
			return pid
		}
	}
	b.Fatal("s3bench: the S3 server's process not found")
	return 0
}

// backup makes three fresh buckets, a backup database and a state dir, and a config
// backing up the primary to them.
func (e *bench) backup(primaryDB, primaryDir string) (cfg string) {
	e.n++
	name := fmt.Sprintf("s3b%d", e.n)
	e.s3.MakeBuckets(e.b, name+"-commits", name+"-fs", name+"-blocks")
	if err := e.db.CreateDatabase(name, mariadbtest.SchemaFile("seafile.sql")); err != nil {
		e.b.Fatal(err)
	}
	dir := filepath.Join(e.root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.b.Fatal(err)
	}
	cfg = filepath.Join(dir, "seafbak.yml")
	text := fmt.Sprintf(`primary:
  db: "root@unix(%[1]s)/%[2]s"
  data_dir: %[3]s
backup:
  store: s3
  s3:
    endpoint: %[4]s
    region: %[5]s
    commit_bucket: %[6]s-commits
    fs_bucket: %[6]s-fs
    block_bucket: %[6]s-blocks
    path_style: true
    use_https: false
    access_key: %[7]s
    secret_key: %[8]s
  db: "root@unix(%[1]s)/%[6]s"
state: %[9]s
`, e.db.Socket, primaryDB, primaryDir, e.s3.Endpoint, s3test.Region, name, s3test.AccessKey, s3test.SecretKey, filepath.Join(dir, "state"))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		e.b.Fatal(err)
	}
	return cfg
}

func uptime() string {
	out, _ := exec.Command("uptime").Output()
	return strings.TrimSpace(string(out))
}

func BenchmarkS3FirstBackupVsRclone(b *testing.B) {
	if _, err := exec.LookPath("rclone"); err != nil {
		b.Skip("rclone not installed (apt-get install rclone)")
	}
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		b.Skip("GNU time not installed (apt-get install time)")
	}
	ctx := context.Background()
	e := &bench{b: b, root: b.TempDir()}
	bin := *seafbakBin
	if bin == "" {
		bin = filepath.Join(e.root, "seafbak")
		if out, err := exec.Command("go", "build", "-o", bin, "seafbak").CombinedOutput(); err != nil {
			b.Fatalf("build seafbak: %v\n%s", err, out)
		}
	}
	var err error
	e.db, err = mariadbtest.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.db.Stop() })
	e.s3 = s3test.Start(b)
	e.pid = serverPID(b)
	rcloneConf := filepath.Join(e.root, "rclone.conf")
	if err := os.WriteFile(rcloneConf, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	// rclone's S3 backend fails to start when AWS_CA_BUNDLE is set (rclone 1.60:
	// "unsupported transport"); the endpoint is plain HTTP, so it is left out.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			e.rclone = append(e.rclone, kv)
		}
	}
	e.rclone = append(e.rclone,
		"RCLONE_CONFIG="+rcloneConf,
		"RCLONE_CONFIG_BENCH_TYPE=s3",
		"RCLONE_CONFIG_BENCH_PROVIDER=Other",
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+s3test.AccessKey,
		"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+s3test.SecretKey,
		"RCLONE_CONFIG_BENCH_ENDPOINT=http://"+e.s3.Endpoint,
		"RCLONE_CONFIG_BENCH_REGION="+s3test.Region,
		"RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true",
	)

	// The primary: one library of -files files, -bytes bytes.
	primaryDB := "s3bench_primary"
	if err := e.db.CreateDatabase(primaryDB, mariadbtest.SchemaFile("seafile.sql")); err != nil {
		b.Fatal(err)
	}
	pdb, err := e.db.Open(primaryDB)
	if err != nil {
		b.Fatal(err)
	}
	defer pdb.Close()
	primaryDir := filepath.Join(e.root, "primary")
	if err := os.MkdirAll(filepath.Join(primaryDir, "storage"), 0o755); err != nil {
		b.Fatal(err)
	}
	lib, err := seafgen.New(primaryDir).NewLibrary(seafgen.LibraryOptions{Name: "s3bench"})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if _, err := lib.CommitBulk("bulk", *files, *totalBytes, 1); err != nil {
		b.Fatal(err)
	}
	if err := lib.InsertRows(ctx, pdb); err != nil {
		b.Fatal(err)
	}
	var objects int
	filepath.WalkDir(filepath.Join(primaryDir, "storage"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			objects++
		}
		return nil
	})
	label := fmt.Sprintf("(%d files, %.2f GiB, %d objects)", *files, float64(*totalBytes)/(1<<30), objects)
	out := fmt.Sprintf("seafbak S3 bench %s, %s, VersityGW (posix backend, xattr metadata) on loopback, warm page cache\ngenerated in %s\nstart: %s\n",
		label, time.Now().UTC().Format(time.RFC3339), time.Since(t0).Round(time.Millisecond), uptime())

	only := map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		only[p] = true
	}
	var cfg string
	for i := 0; i < *runs && only["first"]; i++ {
		bucket := fmt.Sprintf("rclone%d", i)
		e.s3.MakeBuckets(b, bucket)
		e.record("first backup: rclone copy", e.timed(e.rclone, "rclone", "copy", filepath.Join(primaryDir, "storage"), "bench:"+bucket))
		if n := len(e.s3.Keys(b, bucket)); n != objects {
			b.Fatalf("rclone copied %d objects of %d", n, objects)
		}
		cfg = e.backup(primaryDB, primaryDir)
		e.record("first backup: seafbak sync", e.timed(nil, bin, "--config", cfg, "sync", lib.ID))
		name := fmt.Sprintf("s3b%d", e.n)
		if n := len(e.s3.Keys(b, name+"-commits")) + len(e.s3.Keys(b, name+"-fs")) + len(e.s3.Keys(b, name+"-blocks")); n != objects {
			b.Fatalf("seafbak backed up %d objects of %d", n, objects)
		}
	}
	if cfg == "" {
		cfg = e.backup(primaryDB, primaryDir)
		e.timed(nil, bin, "--config", cfg, "sync", lib.ID)
	}
	for i := 0; i < *changes && only["change"]; i++ {
		path := seafgen.BulkPath(1, *files, (i*7919)%*files)
		if _, err := lib.Commit("one file", seafgen.Put(path, []byte(fmt.Sprintf("changed %d %d", i, time.Now().UnixNano())))); err != nil {
			b.Fatal(err)
		}
		if err := lib.InsertRows(ctx, pdb); err != nil {
			b.Fatal(err)
		}
		e.record("one-file change: seafbak sync", e.timed(nil, bin, "--config", cfg, "sync", lib.ID))
	}
	if *straceTo != "" {
		if _, err := lib.Commit("one file", seafgen.Put(seafgen.BulkPath(1, *files, 1), []byte(time.Now().String()))); err != nil {
			b.Fatal(err)
		}
		if err := lib.InsertRows(ctx, pdb); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("strace", "-f", "-tt", "-T", "-o", *straceTo, bin, "--debug", "--config", cfg, "sync", lib.ID)
		logs, err := cmd.CombinedOutput()
		os.WriteFile(*straceTo+".log", logs, 0o644)
		if err != nil {
			b.Fatalf("sync under strace: %v\n%s", err, logs)
		}
	}
	for i := 0; i < *runs && only["verify"]; i++ {
		e.record("verify from S3: seafbak verify", e.timed(nil, bin, "--config", cfg, "verify"))
	}
	out += "end:   " + uptime() + "\n"
	for _, f := range e.figures {
		out += f.String() + "\n"
	}
	if s, r := e.fig("first backup: seafbak sync"), e.fig("first backup: rclone copy"); s != nil && r != nil {
		sw, _, _ := s.stat(func(x sample) time.Duration { return x.wall })
		rw, _, _ := r.stat(func(x sample) time.Duration { return x.wall })
		sc, _, _ := s.stat(func(x sample) time.Duration { return x.cpu })
		rc, _, _ := r.stat(func(x sample) time.Duration { return x.cpu })
		ssc, _, _ := s.stat(func(x sample) time.Duration { return x.serverCPU })
		rsc, _, _ := r.stat(func(x sample) time.Duration { return x.serverCPU })
		out += fmt.Sprintf("first backup, seafbak / rclone (medians): wall %.2fx, client cpu %.2fx, client+server cpu %.2fx (goal: wall <= 1.2x)\n",
			sw.Seconds()/rw.Seconds(), sc.Seconds()/rc.Seconds(), (sc+ssc).Seconds()/(rc+rsc).Seconds())
	}
	fmt.Print(out)
	if dir := os.Getenv("S3BENCH_OUT"); dir != "" {
		os.WriteFile(filepath.Join(dir, "s3bench.txt"), []byte(out), 0o644)
	}
}
