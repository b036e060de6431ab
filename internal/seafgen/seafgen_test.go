package seafgen

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	fixtureDir  = "../../testdata/real-library"
	fixtureRepo = "7b89d49b-5c5c-4f42-8ded-940c84a3e206"
	fixtureHead = "5715208e10e33de4ac89cd441c52d948df77125b"
	fixtureMrg  = "d32f7ff1c30b4724f3ccaa86a30dab6d66bbb1c7"
	fixtureP1   = "7407786e9f8c103e1cfd253ea4a9f238d4aa524f"
	fixtureP2   = "7106461e7c46e455de8c3f27bcd98dc21a824fc1"
	fixtureRoot = "5b0cb6d31cee94c689520373762f2a71c00fb837"
)

func fixturePath(kind, id string) string {
	return filepath.Join(fixtureDir, "storage", kind, fixtureRepo, id[:2], id[2:])
}

func inflate(t *testing.T, raw []byte) []byte {
	t.Helper()
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	js, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// objectFiles lists (id, path) of the objects of one kind and store.
func objectFiles(t *testing.T, dataDir, kind, store string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(dataDir, "storage", kind, store)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		id := strings.ReplaceAll(rel, string(filepath.Separator), "")
		if !isObjectID(id) || len(filepath.Base(p)) != 38 {
			t.Errorf("stray file in object store: %s", p)
		}
		out[id] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// reencodeFS decodes uncompressed fs JSON and encodes it again.
func reencodeFS(t *testing.T, js []byte) []byte {
	t.Helper()
	o, err := decodeFS(js)
	if err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
	var out []byte
	if o.Type == fsTypeDir {
		out, err = EncodeDir(o.dirents())
	} else {
		out, err = EncodeFile(o.BlockIDs, o.Size)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// verifyStore checks every object under dataDir/storage: fs objects are
// zlib (78 9c) of canonical JSON whose SHA-1 is their id, blocks hash to
// their id, file sizes equal the sum of their blocks (plaintext sizes for
// stores listed in encrypted), commits name themselves and hash to their id.
func verifyStore(t *testing.T, dataDir string, encrypted map[string]bool) (nFS, nBlocks, nCommits int) {
	t.Helper()
	stores, _ := os.ReadDir(filepath.Join(dataDir, "storage", kindFS))
	for _, s := range stores {
		store := s.Name()
		blocks := objectFiles(t, dataDir, kindBlocks, store)
		for id, p := range blocks {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if ObjectID(data) != id {
				t.Errorf("block %s/%s has SHA-1 %s", store, id, ObjectID(data))
			}
			nBlocks++
		}
		for id, p := range objectFiles(t, dataDir, kindFS, store) {
			nFS++
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) < 2 || raw[0] != 0x78 || raw[1] != 0x9c {
				t.Errorf("fs %s: zlib header % x", id, raw[:2])
			}
			js := inflate(t, raw)
			if ObjectID(js) != id {
				t.Errorf("fs %s: SHA-1 of JSON is %s", id, ObjectID(js))
			}
			if id == EmptyID {
				t.Errorf("fs object stored under the empty id")
			}
			if re := reencodeFS(t, js); !bytes.Equal(re, js) {
				t.Errorf("fs %s is not canonical:\n%s\n%s", id, js, re)
			}
			o, _ := decodeFS(js)
			if o.Type != fsTypeFile {
				continue
			}
			var sum int64
			for _, b := range o.BlockIDs {
				bp, ok := blocks[b]
				if !ok {
					t.Errorf("file %s: block %s missing", id, b)
					continue
				}
				st, _ := os.Stat(bp)
				if encrypted[store] {
					if st.Size()%16 != 0 {
						t.Errorf("encrypted block %s has size %d", b, st.Size())
					}
					sum += st.Size() // padded; compared loosely below
				} else {
					sum += st.Size()
				}
			}
			if encrypted[store] {
				n := int64(len(o.BlockIDs))
				if sum < o.Size+n || sum > o.Size+16*n {
					t.Errorf("encrypted file %s: %d ciphertext bytes for %d plaintext bytes in %d blocks", id, sum, o.Size, n)
				}
			} else if sum != o.Size {
				t.Errorf("file %s: blocks hold %d bytes, size says %d", id, sum, o.Size)
			}
		}
	}
	repos, _ := os.ReadDir(filepath.Join(dataDir, "storage", kindCommits))
	for _, r := range repos {
		for id, p := range objectFiles(t, dataDir, kindCommits, r.Name()) {
			nCommits++
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var c map[string]any
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatalf("commit %s: %v", id, err)
			}
			if c["commit_id"] != id || c["repo_id"] != r.Name() {
				t.Errorf("commit %s in %s says %v in %v", id, r.Name(), c["commit_id"], c["repo_id"])
			}
			want := commitIDOf(t, data)
			if want != id {
				t.Errorf("commit %s: fields hash to %s", id, want)
			}
		}
	}
	return
}

// commitIDOf recomputes a commit's id: merge commits (two parents) are made
// by the Go file server (no NULs), the others by C code (NULs).
func commitIDOf(t *testing.T, data []byte) string {
	t.Helper()
	var c struct {
		RootID, Creator, CreatorName, Description string
		Ctime                                     int64
		Second                                    *string
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for k, dst := range map[string]any{"root_id": &c.RootID, "creator": &c.Creator, "creator_name": &c.CreatorName,
		"description": &c.Description, "ctime": &c.Ctime, "second_parent_id": &c.Second} {
		if err := json.Unmarshal(raw[k], dst); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	if c.Second != nil {
		return CommitIDNoNUL(c.RootID, c.Creator, c.CreatorName, c.Description, c.Ctime)
	}
	return CommitIDWithNUL(c.RootID, c.Creator, c.CreatorName, c.Description, c.Ctime)
}

func readCommitFile(t *testing.T, dataDir, repo, id string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dataDir, "storage", kindCommits, repo, id[:2], id[2:]))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustCommit(t *testing.T) func(string, error) string {
	return func(id string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
}

// expectTree builds the expected entries from file contents and extra
// (empty) directories.
func expectTree(files map[string]string, dirs ...string) []Entry {
	seen := map[string]bool{}
	var out []Entry
	addDir := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, Entry{Path: p, Dir: true})
		}
	}
	for p, c := range files {
		parts := strings.Split(p, "/")
		for i := 1; i < len(parts); i++ {
			addDir(strings.Join(parts[:i], "/") + "/")
		}
		s := sha256.Sum256([]byte(c))
		out = append(out, Entry{Path: p, Size: int64(len(c)), SHA256: hex.EncodeToString(s[:])})
	}
	for _, d := range dirs {
		parts := strings.Split(strings.TrimSuffix(d, "/"), "/")
		for i := 1; i <= len(parts); i++ {
			addDir(strings.Join(parts[:i], "/") + "/")
		}
	}
	sortEntries(out)
	return out
}

func checkTree(t *testing.T, l *Library, commit string, want []Entry) {
	t.Helper()
	got, err := l.Tree(commit)
	if err != nil {
		t.Fatalf("Tree(%s): %v", commit, err)
	}
	if g, w := FormatTree(got), FormatTree(want); g != w {
		t.Errorf("tree of %s:\n got:\n%s want:\n%s", commit, g, w)
	}
}

// ---------------------------------------------------------------------------
// Byte compatibility with the real fixture.

func TestFixtureFSObjectsReencodeByteIdentical(t *testing.T) {
	objs := objectFiles(t, filepath.Join(fixtureDir), kindFS, fixtureRepo)
	if len(objs) != 19 {
		t.Fatalf("fixture has %d fs objects, want 19", len(objs))
	}
	dirs, files := 0, 0
	for id, p := range objs {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		js := inflate(t, raw)
		re := reencodeFS(t, js)
		if !bytes.Equal(re, js) {
			t.Errorf("fs %s re-encodes differently:\n got %s\nwant %s", id, re, js)
		}
		if ObjectID(re) != id {
			t.Errorf("fs %s: re-encoded id %s", id, ObjectID(re))
		}
		if o, _ := decodeFS(js); o.Type == fsTypeDir {
			dirs++
		} else {
			files++
		}
	}
	if dirs != 10 || files != 9 {
		t.Errorf("%d dirs, %d files; want 10, 9", dirs, files)
	}
}

func TestFixtureCommitIDsAndEncoding(t *testing.T) {
	commits := objectFiles(t, fixtureDir, kindCommits, fixtureRepo)
	if len(commits) != 7 {
		t.Fatalf("fixture has %d commits", len(commits))
	}
	nul := 0
	for id, p := range commits {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c goCommit
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		if c.SecondParentID != nil {
			if got := CommitIDNoNUL(c.RootID, c.CreatorID, c.CreatorName, c.Desc, c.Ctime); got != id {
				t.Errorf("merge commit %s: Go-style id %s", id, got)
			}
			if CommitIDWithNUL(c.RootID, c.CreatorID, c.CreatorName, c.Desc, c.Ctime) == id {
				t.Errorf("merge commit %s also matches the C hash", id)
			}
		} else {
			nul++
			if got := CommitIDWithNUL(c.RootID, c.CreatorID, c.CreatorName, c.Desc, c.Ctime); got != id {
				t.Errorf("commit %s: C-style id %s", id, got)
			}
		}
		if id == fixtureRoot {
			cc := cCommit{CommitID: c.CommitID, RootID: c.RootID, RepoID: c.RepoID, CreatorName: c.CreatorName,
				CreatorID: c.CreatorID, Desc: c.Desc, Ctime: c.Ctime, RepoName: c.RepoName, RepoDesc: c.RepoDesc, Version: 1}
			if got := cc.encode(); !bytes.Equal(got, data) {
				t.Errorf("first commit:\n got %s\nwant %s", got, data)
			}
			continue
		}
		got, err := c.encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("commit %s re-encodes differently:\n got %s\nwant %s", id, got, data)
		}
	}
	if nul != 6 {
		t.Errorf("%d C-hashed commits, want 6", nul)
	}
}

// NewLibrary reproduces the fixture's "Created library" commit byte for byte.
func TestNewLibraryReproducesFixtureFirstCommit(t *testing.T) {
	dir := t.TempDir()
	g := New(dir)
	g.Now = FixedClock(1795584629)
	l, err := g.NewLibrary(LibraryOptions{ID: fixtureRepo, Name: "Shared", Owner: "bob@example.com", Desc: "two devices"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Head != fixtureRoot {
		t.Fatalf("head %s, want %s", l.Head, fixtureRoot)
	}
	want, _ := os.ReadFile(fixturePath(kindCommits, fixtureRoot))
	if got := readCommitFile(t, dir, fixtureRepo, l.Head); !bytes.Equal(got, want) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if tr, err := l.Tree(l.Head); err != nil || len(tr) != 0 || FormatTree(tr) != "" {
		t.Errorf("tree of a new library: %v %v", tr, err)
	}
}

// Tree of every fixture commit matches trees/*.txt, and Merge reproduces the
// file server's merge commit (root, id and bytes) from the two parents.
func TestOpenFixtureTreesAndMerge(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join(fixtureDir, "storage"), filepath.Join(dir, "storage"))
	g := New(dir)
	l, err := g.OpenLibrary(fixtureRepo, fixtureHead, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "Shared" || l.Owner != "bob@example.com" || l.Desc != "two devices" || l.Version != 1 {
		t.Errorf("opened library: %+v", l)
	}
	cs := l.Commits()
	if len(cs) != 7 || cs[0] != fixtureRoot || cs[6] != fixtureHead {
		t.Fatalf("commits %v", cs)
	}
	for _, c := range cs {
		want, err := os.ReadFile(filepath.Join(fixtureDir, "trees", c+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Tree(c)
		if err != nil {
			t.Fatal(err)
		}
		if FormatTree(got) != string(want) {
			t.Errorf("tree %s:\n got:\n%s want:\n%s", c, FormatTree(got), want)
		}
		parsed, err := ParseTree(string(want))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(parsed, got) {
			t.Errorf("ParseTree(%s) = %v, want %v", c, parsed, got)
		}
	}

	l.SetHead(fixtureP1)
	g.Now = FixedClock(1795584668)
	// writeCommit refuses to overwrite the fixture's merge commit with
	// different bytes, so success means byte identity.
	m, err := l.Merge(fixtureP2)
	if err != nil {
		t.Fatal(err)
	}
	if m != fixtureMrg {
		t.Errorf("merge id %s, want %s", m, fixtureMrg)
	}
	if root, _ := l.RootID(m); root != "5f29469a0186e0cea198677f33d1fe70fb842c1e" {
		t.Errorf("merge root %s", root)
	}
	want, _ := os.ReadFile(fixturePath(kindCommits, fixtureMrg))
	if got := readCommitFile(t, dir, fixtureRepo, m); !bytes.Equal(got, want) {
		t.Errorf("merge commit:\n got %s\nwant %s", got, want)
	}
	if n := len(objectFiles(t, dir, kindFS, fixtureRepo)); n != 19 {
		t.Errorf("merge wrote new fs objects: %d", n)
	}
}

func TestEncodeDirEscaping(t *testing.T) {
	js, err := EncodeDir([]Dirent{
		{ID: EmptyID, Mode: ModeFile, Modifier: "a/b", Mtime: 1, Name: "ctl\x1f\x01\t\n\r\b\f \"q\" \\ <&> é \u2028 日本", Size: 0},
		{ID: EmptyID, Mode: ModeDir, Mtime: 2, Name: "Z"},
		{ID: EmptyID, Mode: ModeDir, Mtime: 3, Name: "a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"dirents": [{"id": "0000000000000000000000000000000000000000", "mode": 33188, "modifier": "a/b", "mtime": 1, ` +
		`"name": "ctl\u001f\u0001\t\n\r\u0008\u000c \"q\" \\ <&> é ` + "\u2028" + ` 日本", "size": 0}, ` +
		`{"id": "0000000000000000000000000000000000000000", "mode": 16384, "mtime": 3, "name": "a"}, ` +
		`{"id": "0000000000000000000000000000000000000000", "mode": 16384, "mtime": 2, "name": "Z"}], "type": 3, "version": 1}`
	if string(js) != want {
		t.Errorf("got  %s\nwant %s", js, want)
	}
	var back fsObject
	if err := json.Unmarshal(js, &back); err != nil || back.Dirents[0].Name != "ctl\x1f\x01\t\n\r\b\f \"q\" \\ <&> é \u2028 日本" {
		t.Errorf("does not round-trip: %v %q", err, back.Dirents[0].Name)
	}
	if _, err := EncodeDir([]Dirent{{ID: EmptyID, Mode: ModeDir, Name: "x"}, {ID: EmptyID, Mode: ModeFile, Name: "x"}}); err == nil {
		t.Error("duplicate names accepted")
	}
	var b bytes.Buffer
	writeJanssonString(&b, "a\x1f\b/é\"")
	if b.String() != `"a\u001F\b/é\""` {
		t.Errorf("jansson string %s", b.String())
	}
}

// ---------------------------------------------------------------------------
// Generated libraries.

func TestHistoryObjectsAndTrees(t *testing.T) {
	dir := t.TempDir()
	g := New(dir)
	g.BlockSize = 16
	l, err := g.NewLibrary(LibraryOptions{Name: "History", Owner: "alice@example.com", Desc: "d"})
	if err != nil {
		t.Fatal(err)
	}
	ok := mustCommit(t)
	c0 := l.Head
	if !isUUID(l.ID) || l.ID[14] != '4' || l.StoreID != l.ID {
		t.Errorf("library id %s store %s", l.ID, l.StoreID)
	}

	bigA := strings.Repeat("0123456789abcdef", 6) + "tail" // 100 bytes: 7 blocks
	bigB := strings.Repeat("0123456789abcdef", 3) + strings.Repeat("x", 40)
	odd := "odd\x1fname <&> \"q\" \\.txt"
	files1 := map[string]string{
		"a.txt":            "alpha\n",
		"dir/sub/deep.txt": "deep",
		"empty.txt":        "",
		"big.bin":          bigA,
		"naïve café.txt":   "café",
		"日本語/ファイル.txt":     "日本",
		odd:                "odd",
		"same1.txt":        "same", // same content twice: one file object
		"same2.txt":        "same",
	}
	ch := []Change{Mkdir("emptydir")}
	for _, p := range slices.Sorted(maps.Keys(files1)) {
		ch = append(ch, Put(p, []byte(files1[p])))
	}
	c1 := ok(l.Commit("c1", ch...))

	c2 := ok(l.Commit("c2",
		Rename("dir", "moved/dir2"),
		Delete("a.txt"),
		Put("big.bin", []byte(bigB)),
		Rename("naïve café.txt", "café-renamed.txt"),
		Mkdir("emptydir"), // exists: no-op
	))
	files2 := maps.Clone(files1)
	delete(files2, "a.txt")
	delete(files2, "dir/sub/deep.txt")
	delete(files2, "naïve café.txt")
	files2["moved/dir2/sub/deep.txt"] = "deep"
	files2["big.bin"] = bigB
	files2["café-renamed.txt"] = "café"

	b1 := ok(l.CommitOn(c1, "b1",
		Put("from-branch.txt", []byte("branch")),
		Put("a.txt", []byte("alpha modified\n")), // deleted on head: the modification is kept
		Put("日本語/ファイル.txt", []byte("日本語!")),
		Mkdir("branch-empty"),
	))
	if l.Head != c2 {
		t.Fatalf("CommitOn moved Head")
	}
	filesB := maps.Clone(files1)
	filesB["from-branch.txt"] = "branch"
	filesB["a.txt"] = "alpha modified\n"
	filesB["日本語/ファイル.txt"] = "日本語!"

	m := ok(l.Merge(b1))
	if l.Head != m {
		t.Fatal("Merge did not move Head")
	}
	filesM := maps.Clone(files2)
	filesM["from-branch.txt"] = "branch"
	filesM["a.txt"] = "alpha modified\n"
	filesM["日本語/ファイル.txt"] = "日本語!"

	c3 := ok(l.Commit("c3", Delete("moved"), Put("after.txt", []byte("after"))))
	files3 := maps.Clone(filesM)
	delete(files3, "moved/dir2/sub/deep.txt")
	files3["after.txt"] = "after"

	checkTree(t, l, c0, nil)
	checkTree(t, l, c1, expectTree(files1, "emptydir"))
	checkTree(t, l, c2, expectTree(files2, "emptydir"))
	checkTree(t, l, b1, expectTree(filesB, "emptydir", "branch-empty"))
	checkTree(t, l, m, expectTree(filesM, "emptydir", "branch-empty"))
	checkTree(t, l, c3, expectTree(files3, "emptydir", "branch-empty"))

	if got := l.Commits(); !slices.Equal(got, []string{c0, c1, c2, b1, m, c3}) {
		t.Errorf("Commits() = %v", got)
	}
	for i, c := range l.Commits() {
		if ct, _ := l.Ctime(c); ct != DefaultStartTime+int64(i) {
			t.Errorf("ctime of commit %d = %d", i, ct)
		}
	}

	nFS, nBlocks, nCommits := verifyStore(t, dir, nil)
	if nCommits != 6 || nFS == 0 || nBlocks == 0 {
		t.Errorf("%d fs, %d blocks, %d commits", nFS, nBlocks, nCommits)
	}
	// big.bin (100 bytes) is 7 blocks of at most 16 bytes.
	root, _ := l.RootID(c1)
	ds, err := g.readDir(l.StoreID, root)
	if err != nil {
		t.Fatal(err)
	}
	var big, emptyF, emptyD, same1, same2 Dirent
	for _, d := range ds {
		switch d.Name {
		case "big.bin":
			big = d
		case "empty.txt":
			emptyF = d
		case "emptydir":
			emptyD = d
		case "same1.txt":
			same1 = d
		case "same2.txt":
			same2 = d
		}
	}
	if o, err := g.readFS(l.StoreID, big.ID); err != nil || len(o.BlockIDs) != 7 || o.Size != 100 {
		t.Errorf("big.bin: %v %+v", err, o)
	}
	if emptyF.ID != EmptyID || emptyF.Size != 0 || emptyF.Mode != ModeFile || emptyD.ID != EmptyID || emptyD.Mode != ModeDir {
		t.Errorf("empty file %+v, empty dir %+v", emptyF, emptyD)
	}
	if same1.ID != same2.ID || same1.Modifier != "alice@example.com" || same1.Mtime != DefaultStartTime+1 {
		t.Errorf("same1 %+v same2 %+v", same1, same2)
	}
	// The control character is escaped the Go way in the stored JSON, and
	// the stored bytes are what a fresh compress/zlib writer at the default
	// level (as the Go file server uses) produces.
	raw, _ := os.ReadFile(g.objPath(kindFS, l.StoreID, root))
	var fresh bytes.Buffer
	zw := zlib.NewWriter(&fresh)
	zw.Write(inflate(t, raw))
	zw.Close()
	if !bytes.Equal(fresh.Bytes(), raw) {
		t.Error("stored zlib stream differs from a fresh writer's")
	}
	if js := inflate(t, raw); !bytes.Contains(js, []byte(`"name": "odd\u001fname <&> \"q\" \\.txt"`)) ||
		!bytes.Contains(js, []byte(`"name": "naïve café.txt"`)) {
		t.Errorf("root dir JSON: %s", js)
	}

	// Ordinary commit layout: the file server's re-encoding.
	var gc goCommit
	data := readCommitFile(t, dir, l.ID, c2)
	if err := json.Unmarshal(data, &gc); err != nil {
		t.Fatal(err)
	}
	if re, _ := gc.encode(); !bytes.Equal(re, data) {
		t.Errorf("commit is not in the server's layout: %s", data)
	}
	if gc.CreatorID != DefaultDeviceID || gc.CreatorName != "alice@example.com" || gc.RepoName != "History" ||
		gc.RepoDesc != "d" || *gc.ParentID != c1 || gc.SecondParentID != nil || gc.DeviceName != DefaultDeviceName ||
		gc.Encrypted != "" || *gc.Version != 1 {
		t.Errorf("commit fields: %s", data)
	}
	if !bytes.HasPrefix(data, []byte(`{"commit_id":"`+c2+`","repo_id":"`+l.ID+`","root_id":"`)) ||
		!bytes.Contains(data, []byte(`"second_parent_id":null,"repo_name":"History","repo_desc":"d","repo_category":"","device_name":"seafgen","client_version":"8.0.10","version":1}`)) {
		t.Errorf("commit layout: %s", data)
	}
	data = readCommitFile(t, dir, l.ID, m)
	if !bytes.Contains(data, []byte(`"creator":"0000000000000000000000000000000000000000","description":"Auto merge by system"`)) ||
		!bytes.Contains(data, []byte(`"parent_id":"`+c2+`","second_parent_id":"`+b1+`","repo_name":"History","repo_desc":"","repo_category":"","encrypted":"false","version":1,"new_merge":1}`)) {
		t.Errorf("merge commit layout: %s", data)
	}
	data = readCommitFile(t, dir, l.ID, c0)
	if !bytes.HasPrefix(data, []byte(`{"commit_id": "`+c0+`", "root_id": "0000000000000000000000000000000000000000", "repo_id": "`+l.ID+`", "creator_name": "alice@example.com", "creator": "0000000000000000000000000000000000000000", "description": "Created library", `)) ||
		!bytes.HasSuffix(data, []byte(`"repo_name": "History", "repo_desc": "d", "repo_category": null, "no_local_history": 1, "version": 1}`)) {
		t.Errorf("first commit layout: %s", data)
	}
	// No temporary files left behind.
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmpfiles")); len(ents) != 0 {
		t.Errorf("tmpfiles not empty: %v", ents)
	}
}

func TestChangeErrors(t *testing.T) {
	g := New(t.TempDir())
	l, err := g.NewLibrary(LibraryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Commit("base", Put("f", []byte("x")), Mkdir("d")); err != nil {
		t.Fatal(err)
	}
	head := l.Head
	for _, c := range [][]Change{
		{Delete("nope")},
		{Rename("nope", "x")},
		{Rename("f", "d")},
		{Rename("d", "d/inner")},
		{Put("d", []byte("x"))},
		{Put("f/under-a-file", []byte("x"))},
		{Mkdir("f")},
		{Put("", []byte("x"))},
		{Put("a/../b", []byte("x"))},
		{Put("bad\xff", []byte("x"))},
	} {
		if _, err := l.Commit("bad", c...); err == nil {
			t.Errorf("%v accepted", c)
		}
	}
	if _, err := l.Commit("bad \xff desc"); err == nil {
		t.Error("invalid UTF-8 description accepted")
	}
	if l.Head != head {
		t.Error("a failed commit moved Head")
	}
	if _, err := l.CommitOn(strings.Repeat("a", 40), "x"); err == nil {
		t.Error("commit on an unknown parent accepted")
	}
	if _, err := g.NewLibrary(LibraryOptions{ID: l.ID}); err == nil {
		t.Error("duplicate library id accepted")
	}
	if _, err := g.NewLibrary(LibraryOptions{ID: "NOT-A-UUID"}); err == nil {
		t.Error("bad library id accepted")
	}
}

// Equal ctimes are allowed; identical commits on different parents collide
// (ids do not cover parents) and are reported.
func TestFixedClockAndIDCollision(t *testing.T) {
	g := New(t.TempDir())
	l, err := g.NewLibrary(LibraryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g.Now = FixedClock(1234)
	a := mustCommit(t)(l.Commit("one", Put("f", []byte("1"))))
	b := mustCommit(t)(l.Commit("two", Put("f", []byte("1"))))
	ca, _ := l.Ctime(a)
	cb, _ := l.Ctime(b)
	if ca != 1234 || cb != 1234 || a == b {
		t.Errorf("ctimes %d %d ids %s %s", ca, cb, a, b)
	}
	if _, err := l.CommitOn(b, "two", Put("f", []byte("1"))); err == nil || !strings.Contains(err.Error(), "collision") {
		t.Errorf("collision not reported: %v", err)
	}
}

func TestMergeRules(t *testing.T) {
	g := New(t.TempDir())
	l, err := g.NewLibrary(LibraryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ok := mustCommit(t)
	base := map[string]string{
		"same.txt": "s", "both.txt": "b", "headmod.txt": "b", "remmod.txt": "b",
		"headdel.txt": "b", "remdel.txt": "b", "d/x.txt": "b", "d/y.txt": "b", "gone/z.txt": "b",
	}
	var ch []Change
	for _, p := range slices.Sorted(maps.Keys(base)) {
		ch = append(ch, Put(p, []byte(base[p])))
	}
	b := ok(l.Commit("base", ch...))
	h := ok(l.Commit("head",
		Put("both.txt", []byte("H")), Put("headmod.txt", []byte("H")), Delete("headdel.txt"),
		Put("remdel.txt", []byte("H")), Put("d/x.txt", []byte("H")), Put("clash", []byte("file on head")),
		Put("h-only.txt", []byte("h")), Put("same-add.txt", []byte("S")), Delete("gone")))
	r := ok(l.CommitOn(b, "remote",
		Put("both.txt", []byte("R")), Put("remmod.txt", []byte("R")), Put("headdel.txt", []byte("R")),
		Delete("remdel.txt"), Put("d/y.txt", []byte("R")), Put("clash/inner.txt", []byte("dir on remote")),
		Put("r-only.txt", []byte("r")), Put("same-add.txt", []byte("S")), Put("gone/z.txt", []byte("R"))))
	_ = h
	m := ok(l.Merge(r))
	checkTree(t, l, m, expectTree(map[string]string{
		"same.txt":        "s",
		"both.txt":        "R", // both changed: other wins
		"headmod.txt":     "H",
		"remmod.txt":      "R",
		"headdel.txt":     "R", // modified beats deleted
		"remdel.txt":      "H",
		"d/x.txt":         "H",
		"d/y.txt":         "R",
		"clash/inner.txt": "dir on remote", // file vs dir: other wins
		"h-only.txt":      "h",
		"r-only.txt":      "r",
		"same-add.txt":    "S",
		"gone/z.txt":      "R", // dir deleted on head, changed on remote: changed files kept
	}))
	verifyStore(t, g.DataDir, nil)
}

func TestVirtualLibrary(t *testing.T) {
	dir := t.TempDir()
	g := New(dir)
	g.BlockSize = 8
	o, err := g.NewLibrary(LibraryOptions{Name: "Origin", Owner: "o@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ok := mustCommit(t)
	ok(o.Commit("c1", Put("shared/sub/a.txt", []byte("shared content a")), Put("top.txt", []byte("top"))))
	v, err := g.NewVirtualLibrary(o, "/shared/", "")
	if err != nil {
		t.Fatal(err)
	}
	if v.StoreID != o.ID || v.OriginID != o.ID || v.OriginPath != "/shared" || v.BaseCommit != o.Head ||
		v.Name != "shared" || v.Owner != "o@example.com" || v.ID == o.ID {
		t.Errorf("virtual library %+v", v)
	}
	oroot, _ := o.RootID(o.Head)
	sharedID, err := g.resolveDir(o.StoreID, oroot, []string{"shared"})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := v.RootID(v.Head); r != sharedID {
		t.Errorf("virtual root %s, want %s", r, sharedID)
	}
	data := readCommitFile(t, dir, v.ID, v.Head)
	if !bytes.HasPrefix(data, []byte(`{"commit_id": "`+v.Head+`", "root_id": "`+sharedID+`", "repo_id": "`+v.ID+`", "creator_name": "o@example.com", "creator": "0000000000000000000000000000000000000000", "description": "shared", `)) {
		t.Errorf("virtual first commit: %s", data)
	}
	c := ok(v.Commit("v1", Put("sub/b.txt", []byte("added in the virtual library")), Delete("sub/a.txt")))
	checkTree(t, v, c, expectTree(map[string]string{"sub/b.txt": "added in the virtual library"}))
	checkTree(t, o, o.Head, expectTree(map[string]string{"shared/sub/a.txt": "shared content a", "top.txt": "top"}))

	if n := len(objectFiles(t, dir, kindCommits, v.ID)); n != 2 {
		t.Errorf("%d commits under the virtual id", n)
	}
	for _, kind := range []string{kindFS, kindBlocks} {
		if _, err := os.Stat(filepath.Join(dir, "storage", kind, v.ID)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s stored under the virtual library id", kind)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "storage", kindCommits, o.ID, c[:2], c[2:])); !errors.Is(err, fs.ErrNotExist) {
		t.Error("virtual commit stored under the origin")
	}
	// The new file's objects are in the origin's store.
	vroot, _ := v.RootID(c)
	if _, err := g.readDir(o.StoreID, vroot); err != nil {
		t.Errorf("virtual root not in origin store: %v", err)
	}
	verifyStore(t, dir, nil)

	if _, err := g.NewVirtualLibrary(v, "sub", ""); err == nil {
		t.Error("virtual library of a virtual library accepted")
	}
	if _, err := g.NewVirtualLibrary(o, "top.txt", ""); err == nil {
		t.Error("virtual library of a file accepted")
	}
	if _, err := g.NewVirtualLibrary(o, "/", ""); err == nil {
		t.Error("virtual library of the root accepted")
	}
}

func TestEncryptedLibrary(t *testing.T) {
	dir := t.TempDir()
	g := New(dir)
	g.BlockSize = 32
	l, err := g.NewLibrary(LibraryOptions{Name: "Secret", Encrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Encrypted || l.EncVersion != 2 || len(l.Magic) != 64 || len(l.RandomKey) != 96 || l.Password != DefaultPassword {
		t.Fatalf("encryption fields %+v", l)
	}
	if m, _ := encMagic(l.ID, DefaultPassword); m != l.Magic {
		t.Error("magic does not verify the password")
	}
	content := []byte(strings.Repeat("plain text block ", 10)) // 170 bytes: 6 blocks
	c := mustCommit(t)(l.Commit("enc", Put("secret.txt", content), Put("empty", nil)))
	checkTree(t, l, c, expectTree(map[string]string{"secret.txt": string(content), "empty": ""}))

	blocks := objectFiles(t, dir, kindBlocks, l.StoreID)
	if len(blocks) != 6 {
		t.Fatalf("%d blocks", len(blocks))
	}
	cr, err := newCryptor(l.RandomKey, l.Password)
	if err != nil {
		t.Fatal(err)
	}
	var plain []byte
	root, _ := l.RootID(c)
	ds, _ := g.readDir(l.StoreID, root)
	for _, d := range ds {
		if d.Name != "secret.txt" {
			continue
		}
		o, _ := g.readFS(l.StoreID, d.ID)
		for _, b := range o.BlockIDs {
			ct, _ := os.ReadFile(blocks[b])
			if bytes.Contains(content, ct) || bytes.Contains(ct, []byte("plain")) {
				t.Error("block holds plaintext")
			}
			p, err := cr.decrypt(ct)
			if err != nil {
				t.Fatal(err)
			}
			plain = append(plain, p...)
		}
	}
	if !bytes.Equal(plain, content) {
		t.Error("blocks do not decrypt to the content")
	}
	for id := range blocks {
		for i := 0; i < len(content); i += 32 {
			if ObjectID(content[i:min(i+32, len(content))]) == id {
				t.Error("block id is the hash of plaintext")
			}
		}
	}
	verifyStore(t, dir, map[string]bool{l.StoreID: true})

	first := readCommitFile(t, dir, l.ID, l.Commits()[0])
	if !bytes.Contains(first, []byte(`"repo_category": null, "encrypted": "true", "enc_version": 2, "magic": "`+l.Magic+`", "key": "`+l.RandomKey+`", "no_local_history": 1, "version": 1}`)) {
		t.Errorf("encrypted first commit: %s", first)
	}
	data := readCommitFile(t, dir, l.ID, c)
	if !bytes.Contains(data, []byte(`"encrypted":"true","enc_version":2,"magic":"`+l.Magic+`","key":"`+l.RandomKey+`","version":1}`)) {
		t.Errorf("encrypted commit: %s", data)
	}
	// A plaintext library with the same content has different blocks.
	p, _ := g.NewLibrary(LibraryOptions{})
	mustCommit(t)(p.Commit("plain", Put("secret.txt", content)))
	for id := range objectFiles(t, dir, kindBlocks, p.StoreID) {
		if _, ok := blocks[id]; ok {
			t.Error("encrypted and plaintext libraries share a block")
		}
	}
	// A virtual library of an encrypted one is encrypted with the same key.
	mustCommit(t)(l.Commit("dir", Put("folder/x", []byte("x"))))
	v, err := g.NewVirtualLibrary(l, "folder", "")
	if err != nil {
		t.Fatal(err)
	}
	if !v.Encrypted || v.RandomKey != l.RandomKey || v.Magic == l.Magic {
		t.Errorf("virtual encrypted library %+v", v)
	}
	vc := mustCommit(t)(v.Commit("v", Put("y", []byte("why"))))
	checkTree(t, v, vc, expectTree(map[string]string{"x": "x", "y": "why"}))
}

func TestCommitVersion0(t *testing.T) {
	dir := t.TempDir()
	g := New(dir)
	l, _ := g.NewLibrary(LibraryOptions{})
	c := mustCommit(t)(l.CommitVersion0("v0"))
	if l.Head != c || l.Version != 0 {
		t.Error("CommitVersion0 did not move Head or set Version")
	}
	if data := readCommitFile(t, dir, l.ID, c); !bytes.HasSuffix(data, []byte(`"client_version":"8.0.10","version":0}`)) {
		t.Errorf("version-0 commit: %s", data)
	}
	c = mustCommit(t)(l.CommitNoVersion("no version"))
	if data := readCommitFile(t, dir, l.ID, c); bytes.Contains(data, []byte(`"version"`)) {
		t.Errorf("commit without version: %s", data)
	}
}

func TestTruncateBefore(t *testing.T) {
	dir := t.TempDir()
	g := New(dir)
	g.BlockSize = 4
	o, _ := g.NewLibrary(LibraryOptions{})
	ok := mustCommit(t)
	c1 := ok(o.Commit("c1", Put("a.txt", []byte("version one of a")), Put("b.txt", []byte("bbbbbbbb")),
		Put("keep.txt", []byte("kept forever")), Put("shared/s.txt", []byte("shared with a virtual library"))))
	v, err := g.NewVirtualLibrary(o, "shared", "")
	if err != nil {
		t.Fatal(err)
	}
	// c1b is older than the limit but the parent of c2, which is at it: the
	// GC keeps it (the first older commit on the path), and trims c1.
	c1b := ok(o.Commit("c1b", Put("a.txt", []byte("version one and a half")), Delete("b.txt")))
	c2 := ok(o.Commit("c2", Put("a.txt", []byte("version two of a")), Delete("shared")))
	c3 := ok(o.Commit("c3", Put("c.txt", []byte("cccc"))))

	// Independent computation of the expected survivors.
	reach := func(l *Library, commits ...string) *reachSet {
		s := newReach()
		for _, c := range commits {
			r, _ := l.RootID(c)
			if err := l.reach(r, s, false); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	kept := reach(o, c1b, c2, c3)
	vkept := reach(v, v.Commits()...)
	old := reach(o, o.Commits()[0], c1)
	fsBefore := objectFiles(t, dir, kindFS, o.StoreID)
	blBefore := objectFiles(t, dir, kindBlocks, o.StoreID)
	commitsBefore := objectFiles(t, dir, kindCommits, o.ID)

	if err := o.TruncateBefore(c2); err != nil {
		t.Fatal(err)
	}
	if ct, _ := o.Ctime(c2); o.ValidSince != ct {
		t.Errorf("ValidSince %d, want %d", o.ValidSince, ct)
	}
	fsAfter := objectFiles(t, dir, kindFS, o.StoreID)
	blAfter := objectFiles(t, dir, kindBlocks, o.StoreID)
	for id := range fsBefore {
		_, present := fsAfter[id]
		want := !old.fs[id] || kept.fs[id] || vkept.fs[id]
		if present != want {
			t.Errorf("fs %s present=%v want %v", id, present, want)
		}
	}
	for id := range blBefore {
		_, present := blAfter[id]
		want := !old.blocks[id] || kept.blocks[id] || vkept.blocks[id]
		if present != want {
			t.Errorf("block %s present=%v want %v", id, present, want)
		}
	}
	if len(fsAfter) == len(fsBefore) || len(blAfter) == len(blBefore) {
		t.Error("nothing was deleted")
	}
	if n := len(objectFiles(t, dir, kindCommits, o.ID)); n != len(commitsBefore) {
		t.Errorf("commits deleted: %d -> %d", len(commitsBefore), n)
	}
	if _, err := o.Tree(c1); err == nil {
		t.Error("tree of a truncated commit still readable")
	}
	checkTree(t, o, c1b, expectTree(map[string]string{"a.txt": "version one and a half", "keep.txt": "kept forever",
		"shared/s.txt": "shared with a virtual library"}))
	checkTree(t, o, c2, expectTree(map[string]string{"a.txt": "version two of a", "keep.txt": "kept forever"}))
	checkTree(t, o, c3, expectTree(map[string]string{"a.txt": "version two of a", "keep.txt": "kept forever", "c.txt": "cccc"}))
	checkTree(t, v, v.Head, expectTree(map[string]string{"s.txt": "shared with a virtual library"}))
	// Idempotent.
	if err := o.TruncateBefore(c2); err != nil {
		t.Fatal(err)
	}
	if err := o.TruncateBefore(strings.Repeat("0", 39) + "1"); err == nil {
		t.Error("unknown commit accepted")
	}
}

func TestCommitBulk(t *testing.T) {
	const files, total = 2000, 20 << 20
	run := func(dir string) (*Library, time.Duration) {
		g := New(dir)
		g.BlockSize = 64 << 10
		l, err := g.NewLibrary(LibraryOptions{ID: "00000000-0000-4000-8000-000000000001"})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := l.CommitBulk("bulk", files, total, 7); err != nil {
			t.Fatal(err)
		}
		return l, time.Since(t0)
	}
	dir := t.TempDir()
	l, took := run(dir)
	t.Logf("CommitBulk(%d files, %d bytes) took %v", files, total, took)
	if took > 60*time.Second {
		t.Errorf("CommitBulk is too slow: %v", took)
	}
	tr, err := l.Tree(l.Head)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var sum int64
	perDir := map[string]int{}
	for _, e := range tr {
		parent := filepath.Dir(strings.TrimSuffix(e.Path, "/"))
		perDir[parent]++
		if !e.Dir {
			n++
			sum += e.Size
		}
	}
	if n != files || sum != total {
		t.Errorf("%d files, %d bytes", n, sum)
	}
	for d, c := range perDir {
		if c > BulkFanout {
			t.Errorf("%s has %d entries", d, c)
		}
	}
	if tr[0].Path != BulkDir(7)+"/" || !slices.ContainsFunc(tr, func(e Entry) bool { return e.Path == BulkPath(7, files, 1999) }) {
		t.Errorf("paths: %v ... ", tr[:3])
	}
	verifyStore(t, dir, nil)

	// Deterministic: same seed and clock, same head and root.
	l2, _ := run(t.TempDir())
	if l2.Head != l.Head {
		t.Errorf("heads differ: %s %s", l.Head, l2.Head)
	}
	// The hash cache agrees with the blocks.
	l.st.sha = map[string]string{}
	tr2, err := l.Tree(l.Head)
	if err != nil || !slices.Equal(tr, tr2) {
		t.Errorf("tree from blocks differs: %v", err)
	}
}

func TestBulkPathsAndSizes(t *testing.T) {
	for _, c := range []struct {
		files, i int
		want     string
	}{
		{1, 0, "bulk-3/f0.bin"},
		{100, 99, "bulk-3/f99.bin"},
		{101, 100, "bulk-3/d01/f100.bin"},
		{10000, 9999, "bulk-3/d99/f9999.bin"},
		{100000, 12345, "bulk-3/d01/d23/f12345.bin"},
	} {
		if got := BulkPath(3, c.files, c.i); got != c.want {
			t.Errorf("BulkPath(%d, %d) = %s, want %s", c.files, c.i, got, c.want)
		}
	}
	for _, c := range []struct {
		n     int
		total int64
	}{{1, 0}, {1, 10}, {3, 10}, {1000, 1 << 30}, {7, 3}} {
		s := bulkSizes(c.n, c.total, 9)
		var sum int64
		for _, x := range s {
			if x < 0 {
				t.Errorf("negative size")
			}
			sum += x
		}
		if sum != c.total {
			t.Errorf("bulkSizes(%d, %d) sum %d", c.n, c.total, sum)
		}
	}
}

func TestFormatAndParseTree(t *testing.T) {
	e := []Entry{
		{Path: "b.txt", Size: 3, SHA256: strings.Repeat("a", 64)},
		{Path: "a/", Dir: true},
		{Path: "a/x", Size: 0, SHA256: emptySHA256},
	}
	want := "dir  -  a/\n" + emptySHA256 + "  0  a/x\n" + strings.Repeat("a", 64) + "  3  b.txt\n"
	if got := FormatTree(e); got != want {
		t.Errorf("got %q", got)
	}
	back, err := ParseTree(want)
	if err != nil || FormatTree(back) != want {
		t.Errorf("ParseTree: %v %v", back, err)
	}
	if _, err := ParseTree("garbage\n"); err == nil {
		t.Error("garbage parsed")
	}
}

func BenchmarkCommitBulk(b *testing.B) {
	for b.Loop() {
		g := New(b.TempDir())
		l, err := g.NewLibrary(LibraryOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.CommitBulk("bulk", 1000, 16<<20, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(16 << 20)
}

// TestCommitBulkLarge checks the benchmark-sized case (100 000 files, 1 GiB);
// it takes minutes and a gigabyte of disk, so it runs only with
// SEAFGEN_LARGE=1.
func TestCommitBulkLarge(t *testing.T) {
	if os.Getenv("SEAFGEN_LARGE") == "" {
		t.Skip("set SEAFGEN_LARGE=1 to run")
	}
	g := New(t.TempDir())
	l, err := g.NewLibrary(LibraryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := l.CommitBulk("large", 100_000, 1<<30, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("CommitBulk(100000 files, 1 GiB) took %v", time.Since(t0))
	t0 = time.Now()
	tr, err := l.Tree(l.Head)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var sum int64
	for _, e := range tr {
		if !e.Dir {
			n++
			sum += e.Size
		}
	}
	if n != 100_000 || sum != 1<<30 {
		t.Errorf("%d files, %d bytes", n, sum)
	}
	t.Logf("Tree took %v", time.Since(t0))
}
