package seafgen

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Object kinds, which are also the directory names under <DataDir>/storage.
const (
	kindCommits = "commits"
	kindFS      = "fs"
	kindBlocks  = "blocks"
)

// maxFSObject bounds the decompressed size of an fs object read back (the
// generator only reads its own objects, but a bound costs nothing).
const maxFSObject = 256 << 20

// objPath returns <DataDir>/storage/<kind>/<store>/<id[0:2]>/<id[2:]>.
func (g *Generator) objPath(kind, store, id string) string {
	return filepath.Join(g.DataDir, "storage", kind, store, id[:2], id[2:])
}

// writeObject stores data under id unless an object with that id already
// exists (objects are immutable and content-addressed, so an existing one is
// the same object). Like the file server's fs backend it writes a temporary
// file and renames it into place: commits and fs objects are staged in the
// destination directory, blocks in <DataDir>/tmpfiles. No fsync: the server
// does not sync either, and this is test infrastructure.
func (g *Generator) writeObject(kind, store, id string, data []byte) error {
	p := g.objPath(kind, store, id)
	if _, err := os.Lstat(p); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(p)
	if err := g.mkdirAll(dir); err != nil {
		return err
	}
	tmpDir := dir
	if kind == kindBlocks {
		tmpDir = filepath.Join(g.DataDir, "tmpfiles")
		if err := g.mkdirAll(tmpDir); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(tmpDir, id+".*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	ok = true
	return nil
}

// mkdirAll is os.MkdirAll remembering the directories it made, which saves
// most of the system calls when many objects are written.
func (g *Generator) mkdirAll(dir string) error {
	if _, ok := g.dirs.Load(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	g.dirs.Store(dir, struct{}{})
	return nil
}

// zlibWriters recycles zlib writers: a new one allocates about a megabyte
// of compressor state, which dominated the cost of small fs objects.
var zlibWriters = sync.Pool{New: func() any { return zlib.NewWriter(io.Discard) }}

// writeCommit stores a commit object. Commit ids do not cover the parents,
// so two different commits can get the same id (same root, creator,
// description and ctime): that is reported instead of silently keeping the
// first one.
func (g *Generator) writeCommit(repoID, id string, data []byte) error {
	old, err := os.ReadFile(g.objPath(kindCommits, repoID, id))
	if err == nil {
		if !bytes.Equal(old, data) {
			return fmt.Errorf("seafgen: commit id collision for %s in %s (same root, creator, description and ctime but different content); vary the description or the clock", id, repoID)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return g.writeObject(kindCommits, repoID, id, data)
}

// writeFS compresses the JSON of an fs object with Go's zlib at its default
// level (stream header 78 9c, like the real writers) and stores it under
// the SHA-1 of the uncompressed JSON, which it returns.
func (g *Generator) writeFS(store string, js []byte) (string, error) {
	id := ObjectID(js)
	if _, err := os.Lstat(g.objPath(kindFS, store, id)); err == nil {
		return id, nil
	}
	var buf bytes.Buffer
	zw := zlibWriters.Get().(*zlib.Writer)
	zw.Reset(&buf)
	if _, err := zw.Write(js); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	zw.Reset(io.Discard)
	zlibWriters.Put(zw)
	return id, g.writeObject(kindFS, store, id, buf.Bytes())
}

// readFS reads an fs object back, decompresses it (bounded) and checks that
// its SHA-1 is its id.
func (g *Generator) readFS(store, id string) (*fsObject, error) {
	raw, err := os.ReadFile(g.objPath(kindFS, store, id))
	if err != nil {
		return nil, err
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("seafgen: fs object %s: %w", id, err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxFSObject+1))
	if err != nil {
		return nil, fmt.Errorf("seafgen: fs object %s: %w", id, err)
	}
	if len(js) > maxFSObject {
		return nil, fmt.Errorf("seafgen: fs object %s is larger than %d bytes", id, maxFSObject)
	}
	if got := ObjectID(js); got != id {
		return nil, fmt.Errorf("seafgen: fs object %s has SHA-1 %s", id, got)
	}
	o, err := decodeFS(js)
	if err != nil {
		return nil, fmt.Errorf("seafgen: fs object %s: %w", id, err)
	}
	return o, nil
}

// readDir returns the dirents of a dir object; EmptyID is the empty dir.
func (g *Generator) readDir(store, id string) ([]Dirent, error) {
	if id == EmptyID {
		return nil, nil
	}
	o, err := g.readFS(store, id)
	if err != nil {
		return nil, err
	}
	if o.Type != fsTypeDir {
		return nil, fmt.Errorf("seafgen: fs object %s is not a directory", id)
	}
	return o.dirents(), nil
}

// readCommit parses a stored commit.
func (g *Generator) readCommit(repoID, id string) (*parsedCommit, error) {
	data, err := os.ReadFile(g.objPath(kindCommits, repoID, id))
	if err != nil {
		return nil, err
	}
	var c parsedCommit
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("seafgen: commit %s: %w", id, err)
	}
	if c.CommitID != id {
		return nil, fmt.Errorf("seafgen: commit %s says it is %s", id, c.CommitID)
	}
	return &c, nil
}
