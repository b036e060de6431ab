// Command rpo measures the recovery point of seafbak watch, polling only or with a
// notification server (-notify): how long after a library's head moves on the primary
// the backup's Branch row holds that head. Run it with scripts/rpo.sh.
//
// It starts a private MariaDB, generates a primary of -libraries small libraries (the
// data-dir source), runs the real seafbak watch --poll as a child process, waits for the
// first backup of every library, then for -duration commits to libraries picked at
// random at random moments (-rate a minute on average): one commit of a few KiB each,
// published with InsertRows (one transaction moving the primary's Branch head); the time
// the head moved is taken when that transaction has committed. The backup database's
// Branch rows are read every 20 ms; a change counts as backed up the first time the
// backup's row for its library holds its head or a later head of that library (a change
// overtaken by the next one before it was backed up counts until the later head is).
// At the end watch is stopped with SIGTERM and must exit 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"seafbak/internal/mariadbtest"
	"seafbak/internal/notiftest"
	"seafbak/internal/seafgen"
	"seafbak/sync/store"
)

var (
	seafbakBin = flag.String("seafbak", "", "seafbak binary")
	workDir    = flag.String("dir", "", "work directory (default: a temp dir, removed at the end)")
	libraries  = flag.Int("libraries", 100, "libraries on the primary")
	files      = flag.Int("files", 20, "files of 4 KiB in each library before the test")
	duration   = flag.Duration("duration", 60*time.Second, "how long libraries are changed")
	poll       = flag.Duration("poll", 2*time.Second, "seafbak watch --poll")
	rate       = flag.Float64("rate", 200, "changes a minute (the count is rate x duration, at uniformly random moments)")
	settle     = flag.Duration("settle", 60*time.Second, "how long to wait after the last change for every change to be backed up")
	seed       = flag.Uint64("seed", 1, "random seed of the change schedule and contents")
	firstWait  = flag.Duration("first-wait", 10*time.Minute, "how long the first backup of every library may take")
	notify     = flag.Bool("notify", false, "also run a notification server (the in-repo stand-in) that watch subscribes to; each change is announced to it as the file server does, right after its Branch row moved")
)

// jwtKey is the stand-in notification server's JWT_PRIVATE_KEY, given to watch as
// primary.jwt_private_key (the data-dir source has no file server to ask for tokens).
var jwtKey = []byte("rpo-bench-jwt-private-key-0123456789")

// checkEvery is how often the backup's Branch rows are read.
const checkEvery = 20 * time.Millisecond

type change struct {
	lib   int
	head  string
	moved time.Time // the primary's Branch row holds head
	done  time.Time // the backup's Branch row holds head or a later head
}

type tracker struct {
	mu      sync.Mutex
	pending map[string][]*change // by repo id, oldest first
	all     []*change
}

func (t *tracker) add(repoID string, c *change) {
	t.pending[repoID] = append(t.pending[repoID], c)
	t.all = append(t.all, c)
}

// seen resolves the pending changes of each library up to the one whose head the
// backup holds (rows read at time now).
func (t *tracker) seen(rows map[string]string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, p := range t.pending {
		i := slices.IndexFunc(p, func(c *change) bool { return c.head == rows[id] })
		if i < 0 {
			continue
		}
		for _, c := range p[:i+1] {
			c.done = now
		}
		t.pending[id] = p[i+1:]
	}
}

func (t *tracker) left() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.pending {
		n += len(p)
	}
	return n
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// peakRSS is a process's VmHWM from /proc, "" if it cannot be read.
func peakRSS(pid int) string { return procStatus(pid, "VmHWM:") }

// procStatus is one field of /proc/<pid>/status, "" if it cannot be read.
func procStatus(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(s []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func main() {
	flag.Parse()
	if *seafbakBin == "" {
		log.Fatal("give -seafbak")
	}
	if *libraries < 1 || *duration <= 0 || *rate <= 0 {
		log.Fatal("-libraries, -duration and -rate must be positive")
	}
	root := *workDir
	if root == "" {
		var err error
		root, err = os.MkdirTemp("", "seafbak-rpo")
		must(err)
		defer os.RemoveAll(root)
	}
	if err := run(root); err != nil {
		log.Print(err)
		os.RemoveAll(root)
		os.Exit(1)
	}
}

func run(root string) error {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(*seed, 0x5eafbac))
	host, _ := os.Hostname()
	loadBefore := loadavg()

	srv, err := mariadbtest.Start()
	if err != nil {
		return err
	}
	defer srv.Stop()
	for _, name := range []string{"rpo_primary", "rpo_backup"} {
		if err := srv.CreateDatabase(name, mariadbtest.SchemaFile("seafile.sql")); err != nil {
			return err
		}
	}
	pdb, err := srv.Open("rpo_primary")
	if err != nil {
		return err
	}
	defer pdb.Close()
	bdb, err := srv.Open("rpo_backup")
	if err != nil {
		return err
	}
	defer bdb.Close()

	primaryDir := filepath.Join(root, "primary")
	if err := os.MkdirAll(filepath.Join(primaryDir, "storage"), 0o755); err != nil {
		return err
	}
	g := seafgen.New(primaryDir)
	libs := make([]*seafgen.Library, *libraries)
	t0 := time.Now()
	for i := range libs {
		lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("lib", i)})
		if err != nil {
			return err
		}
		if _, err := lib.CommitBulk("bulk", *files, int64(*files)*4096, uint64(i)+1); err != nil {
			return err
		}
		if err := lib.InsertRows(ctx, pdb); err != nil {
			return err
		}
		libs[i] = lib
	}
	log.Printf("generated %d libraries of %d files in %s", len(libs), *files, time.Since(t0).Round(time.Millisecond))

	dir := filepath.Join(root, "backup")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var notif *notiftest.Server
	notifyKeys := ""
	if *notify {
		notif = &notiftest.Server{Key: jwtKey}
		url, err := notif.Start()
		if err != nil {
			return err
		}
		defer notif.Stop()
		notifyKeys = fmt.Sprintf("  notification_url: %s\n  jwt_private_key: %s\n", url, jwtKey)
	}
	cfg := filepath.Join(dir, "seafbak.yml")
	text := fmt.Sprintf("primary:\n"+notifyKeys+"  db: \"root@unix(%[1]s)/rpo_primary\"\n  data_dir: %[2]s\nbackup:\n  db: \"root@unix(%[1]s)/rpo_backup\"\n  data_dir: %[3]s\nstate: %[4]s\n",
		srv.Socket, primaryDir, filepath.Join(dir, "seafile-data"), filepath.Join(dir, "state"))
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return err
	}
	logPath := filepath.Join(root, "watch.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(*seafbakBin, "--config", cfg, "watch", "--poll", poll.String())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fail := func(err error) error {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\nseafbak watch's log:\n%s", err, out)
	}

	// The first backup of every library.
	t0 = time.Now()
	for {
		rows, err := store.NewRows(bdb).Heads(ctx)
		if err != nil {
			return fail(err)
		}
		if !slices.ContainsFunc(libs, func(l *seafgen.Library) bool { return rows[l.ID] != l.Head }) {
			break
		}
		select {
		case err := <-exited:
			return fail(fmt.Errorf("seafbak watch exited during the first backup: %v", err))
		case <-time.After(checkEvery):
		}
		if time.Since(t0) > *firstWait {
			return fail(fmt.Errorf("first backup not done after %s (-first-wait)", *firstWait))
		}
	}
	firstBackup := time.Since(t0)
	log.Printf("first backup of %d libraries seen after %s", len(libs), firstBackup.Round(time.Millisecond))
	if notif != nil {
		t0 := time.Now()
		for slices.ContainsFunc(libs, func(l *seafgen.Library) bool { return notif.Subscribed(l.ID) == 0 }) {
			if time.Since(t0) > 5*time.Minute {
				return fail(errors.New("watch did not subscribe to every library within 5 minutes"))
			}
			time.Sleep(100 * time.Millisecond)
		}
		log.Printf("every library subscribed %s later", time.Since(t0).Round(time.Millisecond))
	}

	// The schedule: uniformly random moments over the duration.
	n := max(1, int(math.Round(*rate*duration.Minutes())))
	at := make([]time.Duration, n)
	for i := range at {
		at[i] = time.Duration(rng.Int64N(int64(*duration)))
	}
	slices.Sort(at)

	t := &tracker{pending: map[string][]*change{}}
	stop := make(chan struct{})
	var checkErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(checkEvery)
		defer tick.Stop()
		for {
			rows, err := store.NewRows(bdb).Heads(ctx)
			now := time.Now()
			if err != nil {
				checkErr = err
				return
			}
			t.seen(rows, now)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	start := time.Now()
	late := 0
	for i, d := range at {
		if w := time.Until(start.Add(d)); w > 0 {
			time.Sleep(w)
		} else if w < -100*time.Millisecond {
			late++
		}
		k := rng.IntN(len(libs))
		lib := libs[k]
		content := make([]byte, 2048+rng.IntN(6*1024))
		for j := range content {
			content[j] = byte(rng.Uint32())
		}
		if _, err := lib.Commit(fmt.Sprint("change ", i), seafgen.Put(fmt.Sprintf("changes/%d.bin", i), content)); err != nil {
			close(stop)
			return fail(err)
		}
		// Held across the transaction, so the checker cannot see the new head in the
		// backup before the change is registered.
		t.mu.Lock()
		err := lib.InsertRows(ctx, pdb)
		if err == nil {
			t.add(lib.ID, &change{lib: k, head: lib.Head, moved: time.Now()})
		}
		t.mu.Unlock()
		if err == nil && notif != nil {
			// What the file server does after a commit, from inside the upload request.
			err = notiftest.PostEvent(notif.URL(), jwtKey, lib.ID, lib.Head)
		}
		if err != nil {
			close(stop)
			return fail(err)
		}
	}
	changing := time.Since(start)
	deadline := time.Now().Add(*settle)
	for t.left() > 0 && time.Now().Before(deadline) && checkErr == nil {
		time.Sleep(checkEvery)
	}
	close(stop)
	wg.Wait()
	if checkErr != nil {
		return fail(checkErr)
	}
	loadAfter := loadavg()

	rss, rssNow := peakRSS(cmd.Process.Pid), procStatus(cmd.Process.Pid, "VmRSS:")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fail(err)
	}
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(60 * time.Second):
		return fail(errors.New("seafbak watch did not exit within 60 s of SIGTERM"))
	}
	exitCode := cmd.ProcessState.ExitCode()
	var cpu time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}

	var lat []time.Duration
	overtaken := 0
	for _, c := range t.all {
		if c.done.IsZero() {
			continue
		}
		lat = append(lat, c.done.Sub(c.moved))
	}
	// A change is overtaken when a later change of its library was made before it was
	// backed up.
	last := map[int]*change{}
	for _, c := range t.all {
		if p := last[c.lib]; p != nil && !p.done.IsZero() && p.done.After(c.moved) {
			overtaken++
		}
		last[c.lib] = c
	}
	slices.Sort(lat)

	signal := "polling only"
	if notif != nil {
		signal = "notification server + polling"
	}
	fmt.Printf("seafbak watch RPO on %s, %s: %s, --poll %s, %d libraries (%d files of 4 KiB, data-dir source), changes over %s at %.0f a minute\n",
		host, time.Now().UTC().Format(time.RFC3339), signal, *poll, len(libs), *files, *duration, *rate)
	fmt.Printf("load average (1/5/15 min) before %s, after %s\n", loadBefore, loadAfter)
	fmt.Printf("first backup of %d libraries: %.2fs\n", len(libs), firstBackup.Seconds())
	fmt.Printf("changes made: %d in %.1fs (%d more than 100 ms late), %d overtaken by a later change of their library before being backed up\n",
		len(t.all), changing.Seconds(), late, overtaken)
	if len(lat) > 0 {
		fmt.Printf("primary head moved -> backup Branch row holds it (checked every %s), %d changes: p50 %.3fs  p99 %.3fs  max %.3fs  (min %.3fs, mean %.3fs)\n",
			checkEvery, len(lat), percentile(lat, 0.50).Seconds(), percentile(lat, 0.99).Seconds(), lat[len(lat)-1].Seconds(), lat[0].Seconds(), mean(lat).Seconds())
	}
	if missed := len(t.all) - len(lat); missed > 0 {
		fmt.Printf("NOT BACKED UP within %s of the last change: %d changes\n", *settle, missed)
	}
	fmt.Printf("seafbak watch: peak RSS %s (first backup included), RSS at the end %s, CPU (user+sys) %.2fs, exit code %d on SIGTERM\n", rss, rssNow, cpu.Seconds(), exitCode)
	if exitCode != 0 {
		return fail(fmt.Errorf("seafbak watch exited %d on SIGTERM, not 0: %v", exitCode, exitErr))
	}
	if len(lat) < len(t.all) {
		return fail(fmt.Errorf("%d changes not backed up", len(t.all)-len(lat)))
	}
	return nil
}

func mean(s []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return sum / time.Duration(len(s))
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
