package object

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const realRepo = "7b89d49b-5c5c-4f42-8ded-940c84a3e206"

func realStorage(t *testing.T) string {
	return filepath.Join("..", "..", "testdata", "real-library", "storage")
}

// Every object Seafile wrote for the real library parses and checks out.
func TestParseRealObjects(t *testing.T) {
	root := realStorage(t)
	counts := map[string]int{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(rel, string(filepath.Separator))
		kind, store, id := parts[0], parts[1], parts[2]+parts[3]
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch Kind(kind) {
		case KindCommit:
			c, err := ParseCommit(data, id, store)
			if err != nil {
				t.Errorf("commit %s: %v", id, err)
			} else if c.Version != 1 || c.Encrypted {
				t.Errorf("commit %s: version %d encrypted %v", id, c.Version, c.Encrypted)
			}
		case KindFS:
			if _, err := ParseFS(id, data); err != nil {
				t.Errorf("fs %s: %v", id, err)
			}
		case KindBlock:
			h := NewBlockHasher(id)
			h.Write(data)
			if err := h.Check(); err != nil {
				t.Error(err)
			}
		}
		counts[kind]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if counts["commits"] != 7 || counts["fs"] != 19 || counts["blocks"] != 12 {
		t.Fatalf("counts %v", counts)
	}
}

func TestMergeCommitParents(t *testing.T) {
	id := "d32f7ff1c30b4724f3ccaa86a30dab6d66bbb1c7"
	data, err := os.ReadFile(filepath.Join(realStorage(t), "commits", realRepo, id[:2], id[2:]))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCommit(data, id, realRepo)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Parents(); len(got) != 2 || got[0] != "7407786e9f8c103e1cfd253ea4a9f238d4aa524f" || got[1] != "7106461e7c46e455de8c3f27bcd98dc21a824fc1" {
		t.Fatalf("parents %v", got)
	}
}

func TestCommitRefusals(t *testing.T) {
	id := strings.Repeat("a", 40)
	root := strings.Repeat("b", 40)
	good := `{"commit_id":"` + id + `","repo_id":"` + realRepo + `","root_id":"` + root + `","parent_id":null,"second_parent_id":null,"ctime":1,"version":1}`
	if _, err := ParseCommit([]byte(good), id, realRepo); err != nil {
		t.Fatalf("good commit refused: %v", err)
	}
	cases := map[string]struct {
		raw, id, repo string
		want          error
	}{
		"other id":       {good, strings.Repeat("c", 40), realRepo, ErrInvalid},
		"other repo":     {good, id, "00000000-0000-0000-0000-000000000000", ErrInvalid},
		"version 0":      {strings.Replace(good, `"version":1`, `"version":0`, 1), id, realRepo, ErrVersion0},
		"no version":     {strings.Replace(good, `,"version":1`, ``, 1), id, realRepo, ErrInvalid},
		"bad root":       {strings.Replace(good, root, "../../etc/passwd", 1), id, realRepo, ErrInvalid},
		"upper hex root": {strings.Replace(good, root, strings.Repeat("B", 40), 1), id, realRepo, ErrInvalid},
		"bad parent":     {strings.Replace(good, `"parent_id":null`, `"parent_id":"xyz"`, 1), id, realRepo, ErrInvalid},
		"not json":       {"{", id, realRepo, ErrInvalid},
		"trailing":       {good + "{}", id, realRepo, ErrInvalid},
		"trailing brace": {good + "}", id, realRepo, ErrInvalid}, // More() is false before it
		"trailing brack": {good + "]", id, realRepo, ErrInvalid},
		"huge":           {good + strings.Repeat(" ", MaxCommitSize), id, realRepo, ErrInvalid},
	}
	for name, c := range cases {
		if _, err := ParseCommit([]byte(c.raw), c.id, c.repo); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func deflate(t *testing.T, plain []byte) ([]byte, string) {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(plain)
	w.Close()
	sum := sha1.Sum(plain)
	return buf.Bytes(), hex.EncodeToString(sum[:])
}

func TestFSRefusals(t *testing.T) {
	okDir := `{"dirents": [{"id": "` + strings.Repeat("a", 40) + `", "mode": 33188, "modifier": "x", "mtime": 1, "name": "f", "size": 3}], "type": 3, "version": 1}`
	data, id := deflate(t, []byte(okDir))
	if _, err := ParseFS(id, data); err != nil {
		t.Fatalf("good dir refused: %v", err)
	}
	if _, err := ParseFS(strings.Repeat("0", 39)+"1", data); !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong id accepted: %v", err)
	}
	for name, plain := range map[string]string{
		"dotdot":     strings.Replace(okDir, `"name": "f"`, `"name": ".."`, 1),
		"slash":      strings.Replace(okDir, `"name": "f"`, `"name": "a/b"`, 1),
		"nul":        strings.Replace(okDir, `"name": "f"`, `"name": "a\u0000b"`, 1),
		"bad id":     strings.Replace(okDir, strings.Repeat("a", 40), "../x", 1),
		"bad mode":   strings.Replace(okDir, "33188", "41471", 1), // a symlink
		"no type":    strings.Replace(okDir, `"type": 3, `, ``, 1),
		"version 0":  strings.Replace(okDir, `"version": 1`, `"version": 0`, 1),
		"neg size":   `{"block_ids": [], "size": -1, "type": 1, "version": 1}`,
		"bad block":  `{"block_ids": ["zz"], "size": 2, "type": 1, "version": 1}`,
		"no blocks":  `{"block_ids": [], "size": 2, "type": 1, "version": 1}`,
		"other type": `{"type": 2, "version": 1}`,
	} {
		data, id := deflate(t, []byte(plain))
		_, err := ParseFS(id, data)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if name == "version 0" && !errors.Is(err, ErrVersion0) {
			t.Errorf("version 0: %v", err)
		}
	}
	if _, err := ParseFS(id, []byte("not zlib")); !errors.Is(err, ErrInvalid) {
		t.Errorf("garbage accepted: %v", err)
	}
}

// A zlib bomb is cut off at the bound instead of filling memory.
func TestInflateBound(t *testing.T) {
	data, _ := deflate(t, bytes.Repeat([]byte{'a'}, 10<<20))
	if len(data) > 100<<10 {
		t.Fatalf("bomb is %d bytes compressed", len(data))
	}
	if _, err := Inflate(data, 1<<20); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bomb inflated: %v", err)
	}
	if out, err := Inflate(data, 10<<20); err != nil || len(out) != 10<<20 {
		t.Fatalf("exact bound: %d %v", len(out), err)
	}
}

func TestIDs(t *testing.T) {
	for _, s := range []string{"", strings.Repeat("a", 39), strings.Repeat("A", 40), strings.Repeat("g", 40), "../" + strings.Repeat("a", 37)} {
		if ValidID(s) {
			t.Errorf("ValidID(%q)", s)
		}
	}
	for _, s := range []string{"7B89D49B-5C5C-4F42-8DED-940C84A3E206", "7b89d49b5c5c-4f42-8ded-940c84a3e206x", "../../../../../../../../../../etc/pa"} {
		if ValidRepoID(s) {
			t.Errorf("ValidRepoID(%q)", s)
		}
	}
	if !ValidRepoID(realRepo) || !ValidID(EmptyID) {
		t.Error("good ids refused")
	}
}

func TestCheckFileSize(t *testing.T) {
	id := strings.Repeat("a", 40)
	for _, c := range []struct {
		size          int64
		blocks        int
		stored        int64
		encrypted, ok bool
	}{
		{100, 2, 100, false, true},
		{100, 2, 101, false, false},
		{100, 2, 102, true, true},  // 1 byte of padding per block
		{100, 2, 132, true, true},  // 16 per block
		{100, 2, 101, true, false}, // a block without padding
		{100, 2, 133, true, false},
		{0, 0, 0, false, true},
	} {
		err := CheckFileSize(id, c.size, c.blocks, c.stored, c.encrypted)
		if (err == nil) != c.ok || err != nil && !IsInvalid(err) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if MaxStoredSize(KindCommit) != MaxCommitSize || MaxStoredSize(KindFS) <= MaxFSObjectSize {
		t.Error("stored-size bounds")
	}
}

// A virtual library's commits live under its own id, its fs objects and blocks under
// its origin's.
func TestKeysFor(t *testing.T) {
	k := Keys{RepoID: "virtual", StoreID: "origin"}
	for kind, want := range map[Kind]string{KindCommit: "virtual", KindFS: "origin", KindBlock: "origin"} {
		if got := k.For(kind); got != want {
			t.Errorf("For(%s) = %q, want %q", kind, got, want)
		}
	}
}
