// Package seafgen writes Seafile libraries into a seafile-data directory in
// Seafile's exact storage format, plus the database rows that define them.
//
// It is test and benchmark infrastructure for seafbak: tests need libraries
// whose bytes are what the real desktop client, seaf-server and the Go file
// server write (so a real Seafile server could serve them), with history,
// merges, virtual and encrypted libraries, truncated history and bulk
// content, built reproducibly in a few lines.
//
// Format, as observed in testdata/real-library and in the Seafile sources:
//
//   - Objects live at <DataDir>/storage/{commits,fs,blocks}/<store>/<id[:2]>/<id[2:]>,
//     each written to a temporary file and renamed into place. The store of
//     commits is the library's own id; the store of fs objects and blocks is
//     the library's StoreID (the origin library's id for a virtual library).
//   - fs objects are zlib-compressed JSON in the C writers' layout (see
//     EncodeDir and EncodeFile); their id is the SHA-1 of the uncompressed
//     JSON. Empty files and directories have EmptyID and are not stored.
//   - Blocks are the file content cut at Generator.BlockSize bytes; their id
//     is the SHA-1 of the stored bytes. In encrypted libraries the stored
//     bytes are the real Seafile encryption-v2 ciphertext (AES-256-CBC with
//     PKCS#7 padding, so up to 16 bytes longer than the plaintext chunk,
//     while the file object's size stays the plaintext size).
//   - "Created library" commits (and a virtual library's first commit) are
//     written as seaf-server writes them (jansson layout, id hashed with NUL
//     terminators). Ordinary commits are written as the Go file server stores
//     a client's upload (compact encoding/json in the server's field order,
//     id hashed with NULs by the client). Merge commits are written as the
//     Go file server makes them (id hashed without NULs).
//
// Memory: the generator keeps no file trees in memory. Each commit loads,
// from the objects already written, only the directories on the paths it
// changes; Tree, Merge and TruncateBefore read the objects back. Per
// library it keeps one small record per commit, and per store a map from
// file object id to the SHA-256 of its content, so that Tree does not have
// to re-read and hash blocks (about 150 bytes per distinct file version).
//
// Concurrency: a Generator may be used from several goroutines. Operations
// on libraries sharing a store (an origin and its virtual libraries) are
// serialised by a per-store lock; reading or writing the exported fields of
// a Library while another goroutine operates on it is a data race.
package seafgen

import (
	"crypto/rand"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// DefaultBlockSize is Seafile's server-side fixed block size (1 MiB), the
// block size of a new Generator.
const DefaultBlockSize = 1 << 20

// DefaultStartTime is the first ctime of a new Generator's clock
// (2023-11-14T22:13:20Z): fixed so runs are reproducible.
const DefaultStartTime int64 = 1_700_000_000

// Defaults for the device fields of ordinary commits; exported so tests can
// assert on them.
const (
	DefaultDeviceName    = "seafgen"
	DefaultClientVersion = "8.0.10"
	DefaultOwner         = "seafgen@example.com"
)

// DefaultDeviceID is the "creator" of ordinary commits (in Seafile the id of
// the uploading client device): 40 hex digits, fixed for reproducibility.
var DefaultDeviceID = ObjectID([]byte("seafgen device"))

// Generator writes libraries into one seafile-data directory. Set its fields
// before creating libraries.
type Generator struct {
	// DataDir is the seafile-data directory; objects go to DataDir/storage.
	DataDir string
	// BlockSize is the size at which file contents are cut into blocks
	// (the last block of a file may be shorter). Tests use small values to
	// get multi-block files cheaply.
	BlockSize int
	// Now returns the ctime of the next commit; it is called exactly once
	// per commit, and file and directory mtimes of a commit equal its ctime.
	// New sets it to NewClock(DefaultStartTime); FixedClock gives commits
	// equal ctimes. Calls are serialised by the Generator.
	Now func() int64
	// DeviceID, DeviceName and ClientVersion fill "creator",
	// "device_name" and "client_version" of ordinary commits, which in
	// Seafile come from the uploading client.
	DeviceID      string
	DeviceName    string
	ClientVersion string

	dirs sync.Map // directories known to exist (see mkdirAll)

	mu   sync.Mutex
	libs map[string]*Library // every library made by this generator, by id
}

// storeState is what libraries sharing a store (an origin and its virtual
// libraries) share.
type storeState struct {
	mu    sync.Mutex
	libs  []*Library        // origin first, then virtual libraries
	sha   map[string]string // file object id -> hex SHA-256 of the plaintext
	crypt *cryptor          // nil unless the libraries are encrypted
}

// New returns a Generator writing into dataDir with the default block size,
// a deterministic clock starting at DefaultStartTime and default device
// fields.
func New(dataDir string) *Generator {
	return &Generator{
		DataDir:       dataDir,
		BlockSize:     DefaultBlockSize,
		Now:           NewClock(DefaultStartTime),
		DeviceID:      DefaultDeviceID,
		DeviceName:    DefaultDeviceName,
		ClientVersion: DefaultClientVersion,
	}
}

// NewClock returns a deterministic clock for Generator.Now: it returns
// start, start+1, start+2, ... one second per call. Safe for concurrent use.
func NewClock(start int64) func() int64 {
	var n atomic.Int64
	n.Store(start - 1)
	return func() int64 { return n.Add(1) }
}

// FixedClock returns a clock that always returns t, for commits with equal
// ctimes (which Seafile produces, e.g. a merge and its second parent).
// Beware that commit ids do not cover parents: two commits with the same
// root, description and ctime get the same id, which the generator reports
// as an error.
func FixedClock(t int64) func() int64 { return func() int64 { return t } }

func (g *Generator) tick() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Now()
}

func (g *Generator) check() error {
	if g.DataDir == "" {
		return errors.New("seafgen: Generator.DataDir is empty")
	}
	if g.BlockSize <= 0 {
		return fmt.Errorf("seafgen: Generator.BlockSize %d is not positive", g.BlockSize)
	}
	if g.Now == nil {
		return errors.New("seafgen: Generator.Now is nil")
	}
	if !isObjectID(g.DeviceID) {
		return fmt.Errorf("seafgen: Generator.DeviceID %q is not 40 hex digits", g.DeviceID)
	}
	return nil
}

// LibraryOptions describes a library to create.
type LibraryOptions struct {
	// ID is the library id, a lowercase UUID; "" means a random UUID v4.
	ID string
	// Name is the library name; "" means "Library <first 8 chars of id>".
	Name string
	// Owner is the owner's email; "" means DefaultOwner.
	Owner string
	// Desc is the library description (repo_desc).
	Desc string
	// Encrypted makes an encryption-version-2 library as seaf-server and
	// the client make it: magic and key are real (derived from Password and
	// a secret derived from the id), blocks are AES-256-CBC ciphertext
	// that a Seafile server given the password could decrypt.
	Encrypted bool
	// Password of an encrypted library; "" means DefaultPassword.
	Password string
}

// Library is a library written by a Generator. The exported fields describe
// it as the database rows and commits do; InsertRows writes them.
type Library struct {
	ID      string // library (repo) id; also the store of its commits
	StoreID string // store of fs objects and blocks: ID, or OriginID for a virtual library
	Name    string
	Owner   string
	Desc    string
	// Version is the library format version recorded in RepoInfo: 1, or 0
	// after CommitVersion0/CommitNoVersion.
	Version int

	Encrypted  bool
	EncVersion int    // 2 when Encrypted
	Magic      string // hex, 64 digits, when Encrypted
	RandomKey  string // hex, 96 digits, when Encrypted ("key" in commits)
	Password   string // the password Magic and RandomKey were made with

	// Virtual libraries only: the origin library, the folder of the origin
	// (leading "/", no trailing "/") and the origin's head when the virtual
	// library was created (VirtualRepo.base_commit).
	OriginID, OriginPath, BaseCommit string

	// Head is the master branch head. Commit, Merge and the Commit*
	// helpers move it; SetHead sets it to anything.
	Head string
	// ValidSince is the RepoValidSince timestamp; 0 means no row.
	// TruncateBefore sets it.
	ValidSince int64

	g       *Generator
	st      *storeState
	commits []string               // every commit written, oldest first
	meta    map[string]*commitMeta // by commit id
}

// commitMeta is the per-commit state kept in memory.
type commitMeta struct {
	root, parent, second string
	ctime                int64
	gen                  int // 1 + max(gen of parents); orders ancestors
}

// newUUID returns a random lowercase UUID version 4.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// reserve registers l under its id, failing if the id is taken.
func (g *Generator) reserve(l *Library) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.libs == nil {
		g.libs = make(map[string]*Library)
	}
	if _, ok := g.libs[l.ID]; ok {
		return fmt.Errorf("seafgen: library %s already exists in this generator", l.ID)
	}
	g.libs[l.ID] = l
	return nil
}

func (g *Generator) unreserve(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.libs, id)
}

// NewLibrary creates a library the way seaf-server does: it writes the
// "Created library" commit (root and creator 40 zeros, creator_name = owner,
// jansson layout) and sets Head to it.
func (g *Generator) NewLibrary(opts LibraryOptions) (*Library, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	id := opts.ID
	if id == "" {
		var err error
		if id, err = newUUID(); err != nil {
			return nil, err
		}
	}
	if !isUUID(id) {
		return nil, fmt.Errorf("seafgen: library id %q is not a lowercase UUID", id)
	}
	l := &Library{
		ID:      id,
		StoreID: id,
		Name:    opts.Name,
		Owner:   opts.Owner,
		Desc:    opts.Desc,
		Version: 1,
		g:       g,
		meta:    make(map[string]*commitMeta),
	}
	if l.Name == "" {
		l.Name = "Library " + id[:8]
	}
	if l.Owner == "" {
		l.Owner = DefaultOwner
	}
	if err := checkText(l.Name, l.Owner, l.Desc); err != nil {
		return nil, err
	}
	st := &storeState{libs: []*Library{l}, sha: make(map[string]string)}
	l.st = st
	if opts.Encrypted {
		l.Encrypted, l.EncVersion = true, encV2
		l.Password = opts.Password
		if l.Password == "" {
			l.Password = DefaultPassword
		}
		var err error
		if l.Magic, err = encMagic(id, l.Password); err != nil {
			return nil, err
		}
		if l.RandomKey, err = encRandomKey(librarySecret(id), l.Password); err != nil {
			return nil, err
		}
		if st.crypt, err = newCryptor(l.RandomKey, l.Password); err != nil {
			return nil, err
		}
	}
	if err := g.reserve(l); err != nil {
		return nil, err
	}
	if err := l.writeCreationCommit(EmptyID, "Created library"); err != nil {
		g.unreserve(id)
		return nil, err
	}
	return l, nil
}

// NewVirtualLibrary creates a virtual library: the folder dir of origin
// synced as a library of its own, as seaf-server's create_virtual_repo does.
// Its first commit (seaf-server layout, description = its repo_desc, which
// is the name as Seahub passes it) has as root the id of that folder at
// origin's head. Its commits are stored under its own id, its fs objects
// and blocks under the origin's store. name "" means the folder's base name.
//
// Later commits on the virtual library and on the origin are independent:
// the generator does not propagate changes between them as Seafile's
// virtual-repo merge does.
func (g *Generator) NewVirtualLibrary(origin *Library, dir, name string) (*Library, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	if origin == nil || origin.g != g {
		return nil, errors.New("seafgen: origin library was not made by this generator")
	}
	if origin.OriginID != "" {
		return nil, errors.New("seafgen: a virtual library cannot be the origin of another")
	}
	comps, err := splitPath(dir)
	if err != nil {
		return nil, err
	}
	if len(comps) == 0 {
		return nil, errors.New("seafgen: a virtual library needs a sub-folder, not the root")
	}
	vpath := "/" + strings.Join(comps, "/")
	if name == "" {
		name = comps[len(comps)-1]
	}
	if err := checkText(name); err != nil {
		return nil, err
	}
	id, err := newUUID()
	if err != nil {
		return nil, err
	}

	st := origin.st
	st.mu.Lock()
	defer st.mu.Unlock()

	om, err := origin.metaOf(origin.Head)
	if err != nil {
		return nil, err
	}
	rootID, err := g.resolveDir(origin.StoreID, om.root, comps)
	if err != nil {
		return nil, fmt.Errorf("seafgen: %s at %s: %w", vpath, origin.Head, err)
	}
	l := &Library{
		ID:         id,
		StoreID:    origin.StoreID,
		Name:       name,
		Owner:      origin.Owner,
		Desc:       name,
		Version:    origin.Version,
		Encrypted:  origin.Encrypted,
		EncVersion: origin.EncVersion,
		RandomKey:  origin.RandomKey,
		Password:   origin.Password,
		OriginID:   origin.ID,
		OriginPath: vpath,
		BaseCommit: origin.Head,
		g:          g,
		st:         st,
		meta:       make(map[string]*commitMeta),
	}
	if l.Encrypted {
		// seaf-server recomputes the magic for the virtual library's id and
		// copies the origin's random key.
		if l.Magic, err = encMagic(id, l.Password); err != nil {
			return nil, err
		}
	}
	if err := g.reserve(l); err != nil {
		return nil, err
	}
	if err := l.writeCreationCommit(rootID, l.Desc); err != nil {
		g.unreserve(id)
		return nil, err
	}
	st.libs = append(st.libs, l)
	return l, nil
}

// OpenLibrary registers a library that already exists in DataDir, e.g. a
// copy of testdata/real-library/storage, so that commits, merges and
// truncations can be added on top of real data. Name, description and
// encryption fields come from head's commit; the commits reachable from head
// become Commits() (parents before children). owner "" means head's
// creator_name; password is needed for an encrypted library (its blocks
// are then decrypted by Tree). Virtual libraries cannot be opened.
func (g *Generator) OpenLibrary(id, head, owner, password string) (*Library, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	if !isUUID(id) {
		return nil, fmt.Errorf("seafgen: library id %q is not a lowercase UUID", id)
	}
	if !isObjectID(head) {
		return nil, fmt.Errorf("seafgen: head %q is not a commit id", head)
	}
	hc, err := g.readCommit(id, head)
	if err != nil {
		return nil, err
	}
	if hc.RepoID != id {
		return nil, fmt.Errorf("seafgen: commit %s belongs to library %s", head, hc.RepoID)
	}
	l := &Library{
		ID:      id,
		StoreID: id,
		Name:    hc.RepoName,
		Owner:   owner,
		Desc:    hc.RepoDesc,
		Version: hc.Version,
		Head:    head,
		g:       g,
		meta:    make(map[string]*commitMeta),
	}
	if l.Owner == "" {
		l.Owner = hc.CreatorName
	}
	st := &storeState{libs: []*Library{l}, sha: make(map[string]string)}
	l.st = st
	if hc.Encrypted == "true" {
		l.Encrypted, l.EncVersion, l.Magic, l.RandomKey, l.Password = true, hc.EncVersion, hc.Magic, hc.RandomKey, password
		if hc.EncVersion != encV2 {
			return nil, fmt.Errorf("seafgen: encryption version %d is not supported", hc.EncVersion)
		}
		if st.crypt, err = newCryptor(hc.RandomKey, password); err != nil {
			return nil, err
		}
	}
	// Record the history, parents before children.
	done := map[string]bool{}
	var visit func(c string) error
	visit = func(c string) error {
		if c == "" || done[c] {
			return nil
		}
		done[c] = true
		m, err := l.metaOf(c)
		if err != nil {
			return err
		}
		if err := visit(m.parent); err != nil {
			return err
		}
		if err := visit(m.second); err != nil {
			return err
		}
		l.record(c, m)
		return nil
	}
	if err := visit(head); err != nil {
		return nil, err
	}
	if err := g.reserve(l); err != nil {
		return nil, err
	}
	return l, nil
}

// resolveDir returns the id of the directory at comps below root.
func (g *Generator) resolveDir(store, root string, comps []string) (string, error) {
	id := root
	for i, c := range comps {
		ds, err := g.readDir(store, id)
		if err != nil {
			return "", err
		}
		found := false
		for _, d := range ds {
			if d.Name == c {
				if !d.IsDir() {
					return "", fmt.Errorf("%q is a file", strings.Join(comps[:i+1], "/"))
				}
				id, found = d.ID, true
				break
			}
		}
		if !found {
			return "", fmt.Errorf("%q does not exist", strings.Join(comps[:i+1], "/"))
		}
	}
	return id, nil
}

// writeCreationCommit writes the first commit of a library as seaf-server
// does, and makes it the head. Callers hold l.st.mu or own l exclusively.
func (l *Library) writeCreationCommit(rootID, desc string) error {
	ctime := l.g.tick()
	c := cCommit{
		RootID:      rootID,
		RepoID:      l.ID,
		CreatorName: l.Owner,
		CreatorID:   EmptyID,
		Desc:        desc,
		Ctime:       ctime,
		RepoName:    l.Name,
		RepoDesc:    l.Desc,
		Encrypted:   l.Encrypted,
		EncVersion:  l.EncVersion,
		Magic:       l.Magic,
		RandomKey:   l.RandomKey,
		Version:     1,
	}
	c.CommitID = CommitIDWithNUL(c.RootID, c.CreatorID, c.CreatorName, c.Desc, c.Ctime)
	if err := l.g.writeCommit(l.ID, c.CommitID, c.encode()); err != nil {
		return err
	}
	l.record(c.CommitID, &commitMeta{root: rootID, ctime: ctime})
	l.Head = c.CommitID
	return nil
}

// clientCommit builds an ordinary commit as the Go file server stores a
// commit uploaded by the desktop client.
func (l *Library) clientCommit(root, parent, desc string, ctime int64, version *int) *goCommit {
	g := l.g
	c := &goCommit{
		RepoID:        l.ID,
		RootID:        root,
		CreatorName:   l.Owner,
		CreatorID:     g.DeviceID,
		Desc:          desc,
		Ctime:         ctime,
		ParentID:      &parent,
		RepoName:      l.Name,
		RepoDesc:      l.Desc,
		DeviceName:    g.DeviceName,
		ClientVersion: g.ClientVersion,
		Version:       version,
	}
	if l.Encrypted {
		c.Encrypted, c.EncVersion, c.Magic, c.RandomKey = "true", l.EncVersion, l.Magic, l.RandomKey
	}
	c.CommitID = CommitIDWithNUL(c.RootID, c.CreatorID, c.CreatorName, c.Desc, c.Ctime)
	return c
}

// writeGoCommit stores c and records it. Callers hold l.st.mu.
func (l *Library) writeGoCommit(c *goCommit) error {
	data, err := c.encode()
	if err != nil {
		return err
	}
	if err := l.g.writeCommit(l.ID, c.CommitID, data); err != nil {
		return err
	}
	m := &commitMeta{root: c.RootID, ctime: c.Ctime}
	if c.ParentID != nil {
		m.parent = *c.ParentID
	}
	if c.SecondParentID != nil {
		m.second = *c.SecondParentID
	}
	l.record(c.CommitID, m)
	return nil
}

// record remembers a commit written by the generator.
func (l *Library) record(id string, m *commitMeta) {
	if _, ok := l.meta[id]; ok {
		return // the same commit written twice (writeCommit checked the bytes)
	}
	m.gen = 1
	for _, p := range []string{m.parent, m.second} {
		if pm := l.meta[p]; p != "" && pm != nil && pm.gen >= m.gen {
			m.gen = pm.gen + 1
		}
	}
	l.meta[id] = m
	l.commits = append(l.commits, id)
}

// metaOf returns what is known about a commit of this library, reading the
// commit object if the generator did not write it in this process.
func (l *Library) metaOf(id string) (*commitMeta, error) {
	if m := l.meta[id]; m != nil {
		return m, nil
	}
	if !isObjectID(id) {
		return nil, fmt.Errorf("seafgen: %q is not a commit id", id)
	}
	c, err := l.g.readCommit(l.ID, id)
	if err != nil {
		return nil, fmt.Errorf("seafgen: commit %s of library %s: %w", id, l.ID, err)
	}
	m := &commitMeta{root: c.RootID, ctime: c.Ctime}
	if c.ParentID != nil {
		m.parent = *c.ParentID
	}
	if c.SecondParentID != nil {
		m.second = *c.SecondParentID
	}
	return m, nil
}

// Commit applies changes to the tree of Head, writes the new objects and an
// ordinary commit (as a desktop client uploads it), and moves Head to it.
// The changes are applied in order; any error leaves Head unchanged (objects
// already written stay, unreferenced, as after a failed upload).
func (l *Library) Commit(desc string, changes ...Change) (string, error) {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	return l.commitOn(l.Head, desc, changes, true)
}

// CommitOn is Commit on another parent, without moving Head: it makes
// divergent branches to merge with Merge.
func (l *Library) CommitOn(parent, desc string, changes ...Change) (string, error) {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	return l.commitOn(parent, desc, changes, false)
}

func (l *Library) commitOn(parent, desc string, changes []Change, move bool) (string, error) {
	return l.commitWith(parent, desc, move, func(ed *editor) error {
		for _, ch := range changes {
			if err := ch.apply(ed); err != nil {
				return fmt.Errorf("seafgen: %v: %w", ch, err)
			}
		}
		return nil
	})
}

// commitWith writes an ordinary commit on parent whose tree is parent's
// tree edited by edit. Callers hold l.st.mu.
func (l *Library) commitWith(parent, desc string, move bool, edit func(*editor) error) (string, error) {
	if err := l.g.check(); err != nil {
		return "", err
	}
	if err := checkText(desc); err != nil {
		return "", err
	}
	pm, err := l.metaOf(parent)
	if err != nil {
		return "", err
	}
	ctime := l.g.tick()
	ed := l.newEditor(pm.root, ctime)
	if err := edit(ed); err != nil {
		return "", err
	}
	root, err := ed.flush()
	if err != nil {
		return "", err
	}
	v := 1
	c := l.clientCommit(root, parent, desc, ctime, &v)
	if err := l.writeGoCommit(c); err != nil {
		return "", err
	}
	if move {
		l.Head = c.CommitID
	}
	return c.CommitID, nil
}

// CommitVersion0 writes, on Head and with Head's tree, a commit carrying
// "version":0, moves Head to it and sets Version to 0 (so InsertRows writes
// RepoInfo.version 0), so a test can check that version-0 libraries are
// refused. Real version-0 commits omit the key (see CommitNoVersion). The
// fs objects stay version 1, and later commits are version 1 again.
func (l *Library) CommitVersion0(desc string) (string, error) {
	zero := 0
	return l.commitVersion(desc, &zero)
}

// CommitNoVersion is CommitVersion0 but omits the "version" key, as the C
// and Go writers do for a version-0 library.
func (l *Library) CommitNoVersion(desc string) (string, error) {
	return l.commitVersion(desc, nil)
}

func (l *Library) commitVersion(desc string, version *int) (string, error) {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	if err := l.g.check(); err != nil {
		return "", err
	}
	if err := checkText(desc); err != nil {
		return "", err
	}
	pm, err := l.metaOf(l.Head)
	if err != nil {
		return "", err
	}
	c := l.clientCommit(pm.root, l.Head, desc, l.g.tick(), version)
	if err := l.writeGoCommit(c); err != nil {
		return "", err
	}
	l.Head = c.CommitID
	l.Version = 0
	return c.CommitID, nil
}

// SetHead sets Head without any check, e.g. to model a primary whose head
// moved backwards, or (with an unknown id) a head whose commit is missing.
func (l *Library) SetHead(commitID string) {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	l.Head = commitID
}

// Commits returns the ids of all commits written for this library, oldest
// first (in the order they were written).
func (l *Library) Commits() []string {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	return slices.Clone(l.commits)
}

// Ctime returns the ctime of a commit of this library.
func (l *Library) Ctime(commitID string) (int64, error) {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	m, err := l.metaOf(commitID)
	if err != nil {
		return 0, err
	}
	return m.ctime, nil
}

// RootID returns the root directory id of a commit of this library.
func (l *Library) RootID(commitID string) (string, error) {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	m, err := l.metaOf(commitID)
	if err != nil {
		return "", err
	}
	return m.root, nil
}

// splitPath turns "a/b/c" (a leading or trailing "/" is allowed) into its
// validated components; "" and "/" are the root (no components).
func splitPath(p string) ([]string, error) {
	t := strings.Trim(p, "/")
	if t == "" {
		return nil, nil
	}
	comps := strings.Split(t, "/")
	for _, c := range comps {
		if err := checkName(c); err != nil {
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
	}
	return comps, nil
}

// joinPath is the inverse of splitPath, for messages.
func joinPath(comps []string) string { return path.Join(comps...) }
