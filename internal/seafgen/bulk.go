package seafgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// BulkFanout is the number of entries per directory CommitBulk aims for.
const BulkFanout = 100

// CommitBulk writes, in ONE ordinary commit on Head, files files whose
// sizes add up to exactly totalBytes, with pseudo-random contents that
// depend only on seed and the file's index (ChaCha8), and moves Head to it.
// It is meant for benchmarks: 100 000 files and 1 GiB are fine, since
// contents are streamed block by block (several files in parallel) and
// never held in memory.
//
// The files go under the directory BulkDir(seed) at the root, in nested
// directories of at most BulkFanout entries; BulkPath gives each file's
// path. Sizes vary around the mean (pairs of files deviate by +-d, at most
// half the mean), the last file taking the remainder. Existing files at the
// same paths are overwritten.
func (l *Library) CommitBulk(desc string, files int, totalBytes int64, seed uint64) (string, error) {
	if files <= 0 {
		return "", fmt.Errorf("seafgen: CommitBulk: %d files", files)
	}
	if totalBytes < 0 {
		return "", fmt.Errorf("seafgen: CommitBulk: %d bytes", totalBytes)
	}
	sizes := bulkSizes(files, totalBytes, seed)
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	return l.commitWith(l.Head, desc, true, func(ed *editor) error {
		return l.bulkEdit(ed, sizes, seed)
	})
}

// BulkDir is the top directory of CommitBulk's files for seed.
func BulkDir(seed uint64) string { return "bulk-" + strconv.FormatUint(seed, 10) }

// BulkPath is the path of file i of CommitBulk(_, files, _, seed).
func BulkPath(seed uint64, files, i int) string {
	leafDirs := (files + BulkFanout - 1) / BulkFanout
	depth := 0
	for n := 1; n < leafDirs; n *= BulkFanout {
		depth++
	}
	digits := make([]byte, 0, 4*depth)
	k := i / BulkFanout
	for d := depth - 1; d >= 0; d-- {
		div := 1
		for range d {
			div *= BulkFanout
		}
		digits = fmt.Appendf(digits, "d%02d/", (k/div)%BulkFanout)
	}
	width := len(strconv.Itoa(files - 1))
	return fmt.Sprintf("%s/%sf%0*d.bin", BulkDir(seed), digits, width, i)
}

// bulkSizes spreads total over n files deterministically.
func bulkSizes(n int, total int64, seed uint64) []int64 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	avg, rem := total/int64(n), total%int64(n)
	sizes := make([]int64, n)
	for i := 0; i < n; i += 2 {
		if i+1 == n {
			sizes[i] = avg
			break
		}
		var j int64
		if avg > 0 {
			j = rng.Int64N(avg+1) - avg/2
		}
		sizes[i], sizes[i+1] = avg+j, avg-j
	}
	sizes[n-1] += rem
	return sizes
}

// bulkContent returns the content stream of file i.
func bulkContent(seed uint64, i int) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[0:], seed)
	binary.LittleEndian.PutUint64(s[8:], uint64(i))
	copy(s[16:], "seafgen bulk....")
	return rand.NewChaCha8(s)
}

type bulkResult struct {
	i       int
	id, sum string
	err     error
}

// bulkEdit writes the files' contents in parallel and adds them to ed.
func (l *Library) bulkEdit(ed *editor, sizes []int64, seed uint64) error {
	n := len(sizes)
	workers := min(runtime.GOMAXPROCS(0), 16, n)
	jobs := make(chan int)
	results := make(chan bulkResult, workers)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, l.g.BlockSize)
			for i := range jobs {
				id, sum, err := l.writeFileFrom(bulkContent(seed, i), sizes[i], buf)
				results <- bulkResult{i, id, sum, err}
			}
		}()
	}
	go func() {
		for i := 0; i < n && !failed.Load(); i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	var firstErr error
	for r := range results {
		if firstErr != nil {
			continue // drain
		}
		if r.err == nil {
			r.err = l.bulkAdd(ed, BulkPath(seed, n, r.i), r.id, sizes[r.i])
		}
		if r.err != nil {
			firstErr = fmt.Errorf("seafgen: CommitBulk file %d: %w", r.i, r.err)
			failed.Store(true)
			continue
		}
		l.st.sha[r.id] = r.sum
	}
	return firstErr
}

func (l *Library) bulkAdd(ed *editor, p, id string, size int64) error {
	comps, err := splitPath(p)
	if err != nil {
		return err
	}
	dir, err := ed.dir(comps[:len(comps)-1], true)
	if err != nil {
		return err
	}
	name := comps[len(comps)-1]
	if old := dir.entries[name]; old != nil && old.IsDir() {
		return errors.New(p + " is a directory")
	}
	dir.entries[name] = &edent{Dirent: Dirent{
		ID: id, Mode: ModeFile, Modifier: l.Owner, Mtime: ed.ctime, Name: name, Size: size,
	}}
	return nil
}
