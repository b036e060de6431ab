package seafgen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
)

// changeOp is the kind of a Change.
type changeOp int

const (
	opPut changeOp = iota
	opMkdir
	opDelete
	opRename
)

// Change is one modification of a tree, applied by Commit and CommitOn.
// Paths are "/"-separated, relative to the library root (a leading "/" is
// ignored), with no empty, "." or ".." components and valid UTF-8.
type Change struct {
	op      changeOp
	path    string
	to      string
	content []byte
}

// Put creates or overwrites the file at path with content; missing parent
// directories are created. The file's mtime is the commit's ctime and its
// modifier the library owner. content must not be modified until the
// commit returns. Putting over a directory is an error.
func Put(path string, content []byte) Change {
	return Change{op: opPut, path: path, content: content}
}

// Mkdir creates an empty directory (and missing parents). It is a no-op if
// the directory exists, an error if a file is there.
func Mkdir(path string) Change { return Change{op: opMkdir, path: path} }

// Delete removes a file or a directory with everything in it. Deleting a
// path that does not exist is an error (it catches typos in tests).
func Delete(path string) Change { return Change{op: opDelete, path: path} }

// Rename moves a file or directory; its id, mtime and modifier are kept, as
// Seafile does. Missing parents of to are created. The destination must not
// exist and must not be inside from.
func Rename(from, to string) Change { return Change{op: opRename, path: from, to: to} }

// String describes the change for error messages.
func (c Change) String() string {
	switch c.op {
	case opPut:
		return fmt.Sprintf("Put(%q, %d bytes)", c.path, len(c.content))
	case opMkdir:
		return fmt.Sprintf("Mkdir(%q)", c.path)
	case opDelete:
		return fmt.Sprintf("Delete(%q)", c.path)
	case opRename:
		return fmt.Sprintf("Rename(%q, %q)", c.path, c.to)
	}
	return "invalid change"
}

var errNotExist = errors.New("does not exist")

func (c Change) apply(e *editor) error {
	comps, err := splitPath(c.path)
	if err != nil {
		return err
	}
	if len(comps) == 0 {
		return errors.New("the root cannot be changed")
	}
	parent, name := comps[:len(comps)-1], comps[len(comps)-1]
	switch c.op {
	case opPut:
		if d, _ := e.lookup(comps); d != nil && d.IsDir() {
			return fmt.Errorf("%q is a directory", c.path)
		}
		n, err := e.dir(parent, true)
		if err != nil {
			return err
		}
		id, sum, err := e.l.writeFileFrom(bytes.NewReader(c.content), int64(len(c.content)), nil)
		if err != nil {
			return err
		}
		e.l.st.sha[id] = sum
		n.entries[name] = &edent{Dirent: Dirent{
			ID: id, Mode: ModeFile, Modifier: e.l.Owner, Mtime: e.ctime, Name: name, Size: int64(len(c.content)),
		}}
	case opMkdir:
		if d, _ := e.lookup(comps); d != nil {
			if d.IsDir() {
				return nil
			}
			return fmt.Errorf("%q is a file", c.path)
		}
		if _, err := e.dir(comps, true); err != nil {
			return err
		}
	case opDelete:
		d, err := e.lookup(comps)
		if err != nil {
			return err
		}
		if d == nil {
			return fmt.Errorf("%q %w", c.path, errNotExist)
		}
		n, err := e.dir(parent, false)
		if err != nil {
			return err
		}
		delete(n.entries, name)
	case opRename:
		to, err := splitPath(c.to)
		if err != nil {
			return err
		}
		if len(to) == 0 {
			return errors.New("cannot rename to the root")
		}
		if len(to) >= len(comps) && slices.Equal(to[:len(comps)], comps) {
			return fmt.Errorf("cannot move %q into itself", c.path)
		}
		d, err := e.lookup(comps)
		if err != nil {
			return err
		}
		if d == nil {
			return fmt.Errorf("%q %w", c.path, errNotExist)
		}
		if t, _ := e.lookup(to); t != nil {
			return fmt.Errorf("destination %q exists", c.to)
		}
		src, err := e.dir(parent, false)
		if err != nil {
			return err
		}
		delete(src.entries, name)
		dst, err := e.dir(to[:len(to)-1], true)
		if err != nil {
			return err
		}
		d.Name = to[len(to)-1]
		dst.entries[d.Name] = d
	default:
		return errors.New("invalid change")
	}
	return nil
}

// editor applies changes to one tree, loading from disk only the
// directories on the changed paths (copy on write).
type editor struct {
	l     *Library
	ctime int64
	root  *enode
}

// enode is a directory being edited.
type enode struct {
	id      string // id as loaded; EmptyID for an empty or new directory
	loaded  bool
	dirty   bool
	entries map[string]*edent
}

// edent is an entry of an enode; sub is set once a directory is opened.
type edent struct {
	Dirent
	sub *enode
}

func (l *Library) newEditor(rootID string, ctime int64) *editor {
	return &editor{l: l, ctime: ctime, root: &enode{id: rootID}}
}

func (e *editor) load(n *enode) error {
	if n.loaded {
		return nil
	}
	ds, err := e.l.g.readDir(e.l.StoreID, n.id)
	if err != nil {
		return err
	}
	n.entries = make(map[string]*edent, len(ds))
	for _, d := range ds {
		n.entries[d.Name] = &edent{Dirent: d}
	}
	n.loaded = true
	return nil
}

func (e *editor) open(d *edent) (*enode, error) {
	if d.sub == nil {
		d.sub = &enode{id: d.ID}
	}
	return d.sub, e.load(d.sub)
}

// lookup returns the entry at comps, or nil if it does not exist (also when
// a parent is a file).
func (e *editor) lookup(comps []string) (*edent, error) {
	n := e.root
	var d *edent
	for _, c := range comps {
		if n == nil {
			return nil, nil
		}
		if err := e.load(n); err != nil {
			return nil, err
		}
		d = n.entries[c]
		if d == nil {
			return nil, nil
		}
		n = nil
		if d.IsDir() {
			var err error
			if n, err = e.open(d); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// dir returns the directory at comps, marking it and every directory above
// it as changed (their dirents get the commit's ctime as mtime). With
// create, missing directories are created; otherwise they are an error.
func (e *editor) dir(comps []string, create bool) (*enode, error) {
	n := e.root
	if err := e.load(n); err != nil {
		return nil, err
	}
	n.dirty = true
	for i, c := range comps {
		d := n.entries[c]
		switch {
		case d == nil && !create:
			return nil, fmt.Errorf("%q %w", joinPath(comps[:i+1]), errNotExist)
		case d == nil:
			d = &edent{
				Dirent: Dirent{ID: EmptyID, Mode: ModeDir, Name: c},
				sub:    &enode{id: EmptyID, loaded: true, entries: map[string]*edent{}},
			}
			n.entries[c] = d
		case !d.IsDir():
			return nil, fmt.Errorf("%q is a file", joinPath(comps[:i+1]))
		}
		sub, err := e.open(d)
		if err != nil {
			return nil, err
		}
		d.Mtime = e.ctime
		sub.dirty = true
		n = sub
	}
	return n, nil
}

// flush writes every changed directory and returns the root id.
func (e *editor) flush() (string, error) { return e.flushNode(e.root) }

func (e *editor) flushNode(n *enode) (string, error) {
	if !n.dirty {
		return n.id, nil
	}
	ds := make([]Dirent, 0, len(n.entries))
	for _, d := range n.entries {
		if d.sub != nil {
			id, err := e.flushNode(d.sub)
			if err != nil {
				return "", err
			}
			d.ID = id
		}
		ds = append(ds, d.Dirent)
	}
	id := EmptyID
	if len(ds) > 0 {
		js, err := EncodeDir(ds)
		if err != nil {
			return "", err
		}
		if id, err = e.l.g.writeFS(e.l.StoreID, js); err != nil {
			return "", err
		}
	}
	n.id, n.dirty = id, false
	return id, nil
}

// emptySHA256 is the SHA-256 of no bytes, the content hash of empty files.
var emptySHA256 = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

// writeFileFrom reads exactly size bytes from r, stores them as blocks of
// BlockSize bytes (encrypted in an encrypted library) and a file object,
// and returns the file id and the SHA-256 of the content. buf, if at least
// BlockSize long, is used as the read buffer. It touches no shared state
// and may run concurrently.
func (l *Library) writeFileFrom(r io.Reader, size int64, buf []byte) (id, sum string, err error) {
	if size == 0 {
		return EmptyID, emptySHA256, nil
	}
	bs := l.g.BlockSize
	if len(buf) < bs {
		buf = make([]byte, min(int64(bs), size))
	}
	h := sha256.New()
	ids := make([]string, 0, (size+int64(bs)-1)/int64(bs))
	for left := size; left > 0; {
		chunk := buf[:min(int64(bs), left)]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return "", "", err
		}
		left -= int64(len(chunk))
		h.Write(chunk)
		data := chunk
		if l.st.crypt != nil {
			data = l.st.crypt.encrypt(chunk)
		}
		bid := ObjectID(data)
		if err := l.g.writeObject(kindBlocks, l.StoreID, bid, data); err != nil {
			return "", "", err
		}
		ids = append(ids, bid)
	}
	js, err := EncodeFile(ids, size)
	if err != nil {
		return "", "", err
	}
	if id, err = l.g.writeFS(l.StoreID, js); err != nil {
		return "", "", err
	}
	return id, hex.EncodeToString(h.Sum(nil)), nil
}
