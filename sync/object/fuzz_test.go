package object

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// Fuzz targets for what comes from the wire (invariant 3): every answer of a primary is
// parsed by one of these before anything is written or any path is built. `go test`
// runs their seeds (Seafile's own objects and hand-made edge cases); to search further:
//
//	go test -run '^$' -fuzz FuzzParseFS -fuzztime 2m ./sync/object/

// realObjects returns the raw bytes of every object of kind in the real library.
func realObjects(f *testing.F, kind Kind) map[string][]byte {
	f.Helper()
	objs := map[string][]byte{}
	root := filepath.Join(realStorage(nil), string(kind), realRepo)
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		objs[filepath.Base(filepath.Dir(p))+filepath.Base(p)] = data
		return err
	})
	if err != nil || len(objs) == 0 {
		f.Fatalf("reading the real library's %s: %d objects, %v", kind, len(objs), err)
	}
	return objs
}

var (
	idPattern     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	repoIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	commitIDField = regexp.MustCompile(`"commit_id"\s*:\s*"[0-9a-f]{40}"`)
)

// A commit answer is accepted only as the commit asked for, of the library asked for,
// with ids that may become paths; anything else is ErrInvalid or ErrVersion0, never a
// panic.
func FuzzParseCommit(f *testing.F) {
	const head = "a9a2ab6b6a8fb6e51e1d1b4c9d8a0c2f1c3e5d7b" // the id every input is asked for
	for _, raw := range realObjects(f, KindCommit) {
		// Seafile's commits, made to claim the id asked for, so the fuzzer starts from
		// commits that pass.
		f.Add(commitIDField.ReplaceAll(raw, []byte(`"commit_id": "`+head+`"`)))
	}
	f.Add([]byte(`{"commit_id":"` + head + `","repo_id":"` + realRepo + `","root_id":"` + EmptyID + `","version":1,"parent_id":null,"second_parent_id":"` + head + `"}`))
	f.Add([]byte(`{"commit_id":"` + head + `","repo_id":"` + realRepo + `","root_id":"` + EmptyID + `","version":1,"encrypted":"true"} {}`))
	f.Add([]byte(`{"commit_id":"` + head + `","repo_id":"` + realRepo + `","root_id":"../../../etc","version":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseCommit(raw, head, realRepo)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrVersion0) {
				t.Fatalf("refused with an error of no known class: %v", err)
			}
			return
		}
		if c.ID != head || c.RepoID != realRepo || c.Version < 1 || !bytes.Equal(c.Raw, raw) {
			t.Fatalf("accepted as %q of %q, version %d", c.ID, c.RepoID, c.Version)
		}
		if !idPattern.MatchString(c.RootID) {
			t.Fatalf("accepted root id %q", c.RootID)
		}
		for _, p := range []string{c.ParentID, c.SecondParentID} {
			if p != "" && !idPattern.MatchString(p) {
				t.Fatalf("accepted parent id %q", p)
			}
		}
		if c.ParentID == "" && c.SecondParentID != "" {
			t.Fatal("accepted a second parent without a first")
		}
	})
}

// An fs object is accepted only when its inflated bytes hash to its id, and then only
// with names that stay one component below the directory a restore writes them into,
// and ids that may become paths.
func FuzzParseFS(f *testing.F) {
	for id, raw := range realObjects(f, KindFS) {
		plain, err := Inflate(raw, MaxFSObjectSize)
		if err != nil {
			f.Fatalf("fs %s: %v", id, err)
		}
		f.Add(plain)
	}
	f.Add([]byte(`{"version":1,"type":3,"dirents":[{"name":"..","id":"` + EmptyID + `","mode":16384}]}`))
	f.Add([]byte(`{"version":1,"type":3,"dirents":[{"name":"a/b","id":"` + EmptyID + `","mode":33188}]}`))
	f.Add([]byte(`{"version":1,"type":3,"dirents":[{"name":"x","id":"` + EmptyID + `","mode":33188},{"name":"x","id":"` + EmptyID + `","mode":33188}]}`))
	f.Add([]byte(`{"version":1,"type":1,"size":5,"block_ids":[]}`))
	f.Add([]byte(`{"version":1,"type":1,"size":-1,"block_ids":["` + EmptyID + `"]}`))
	f.Fuzz(func(t *testing.T, plain []byte) {
		sum := sha1.Sum(plain)
		id := hex.EncodeToString(sum[:])
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(plain)
		zw.Close()
		fs, err := ParseFS(id, z.Bytes())
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrVersion0) {
				t.Fatalf("refused with an error of no known class: %v", err)
			}
			return
		}
		if fs.ID != id {
			t.Fatalf("accepted as %q", fs.ID)
		}
		switch fs.Type {
		case TypeDir:
			seen := map[string]bool{}
			for _, d := range fs.Dirents {
				if p := filepath.Join("/restore", d.Name); filepath.Dir(p) != "/restore" || filepath.Base(p) != d.Name {
					t.Fatalf("accepted entry name %q, which leaves its directory as %q", d.Name, p)
				}
				if bytes.IndexByte([]byte(d.Name), 0) >= 0 || seen[d.Name] {
					t.Fatalf("accepted entry name %q (NUL, or twice)", d.Name)
				}
				seen[d.Name] = true
				if !idPattern.MatchString(d.ID) || (!d.IsDir() && !d.IsFile()) || d.Size < 0 {
					t.Fatalf("accepted entry %+v", d)
				}
			}
		case TypeFile:
			if fs.Size < 0 || fs.Size > 0 && len(fs.BlockIDs) == 0 {
				t.Fatalf("accepted a file of %d bytes in %d blocks", fs.Size, len(fs.BlockIDs))
			}
			for _, b := range fs.BlockIDs {
				if !idPattern.MatchString(b) || b == EmptyID {
					t.Fatalf("accepted block id %q", b)
				}
			}
		default:
			t.Fatalf("accepted type %d", fs.Type)
		}
	})
}

// Whatever bytes a primary sends as an fs object, and under whatever id, ParseFS accepts
// them only if they inflate, within the bound, to bytes whose SHA-1 is the id.
func FuzzParseFSBytes(f *testing.F) {
	for id, raw := range realObjects(f, KindFS) {
		f.Add(id, raw)
		f.Add(id, raw[:len(raw)/2])
	}
	f.Add(EmptyID, []byte{})
	f.Add("../../../../etc/passwd", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, id string, raw []byte) {
		if _, err := ParseFS(id, raw); err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrVersion0) {
				t.Fatalf("refused with an error of no known class: %v", err)
			}
			return
		}
		plain, err := Inflate(raw, MaxFSObjectSize)
		if err != nil {
			t.Fatalf("accepted bytes that do not inflate: %v", err)
		}
		if sum := sha1.Sum(plain); hex.EncodeToString(sum[:]) != id {
			t.Fatalf("accepted as %q bytes that hash to %x", id, sum)
		}
	})
}

// Inflate never gives more than its limit, however the stream is made.
func FuzzInflate(f *testing.F) {
	var bomb bytes.Buffer
	zw := zlib.NewWriter(&bomb)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	f.Add(bomb.Bytes(), uint16(1000))
	for _, raw := range realObjects(f, KindFS) {
		f.Add(raw, uint16(len(raw)))
	}
	f.Fuzz(func(t *testing.T, compressed []byte, limit uint16) {
		out, err := Inflate(compressed, int64(limit))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refused with an error of no known class: %v", err)
			}
			return
		}
		if len(out) > int(limit) {
			t.Fatalf("inflated %d bytes with a limit of %d", len(out), limit)
		}
	})
}

// Only what matches the id patterns exactly passes ValidID and ValidRepoID: paths are
// built from both.
func FuzzIDs(f *testing.F) {
	for _, s := range []string{EmptyID, realRepo, "A9A2AB6B6A8FB6E51E1D1B4C9D8A0C2F1C3E5D7B", realRepo[:35] + "/", "../" + EmptyID[3:], EmptyID + "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidID(s) != idPattern.MatchString(s) || (CheckID(s) == nil) != ValidID(s) {
			t.Fatalf("ValidID(%q) = %v", s, ValidID(s))
		}
		if ValidRepoID(s) != repoIDPattern.MatchString(s) || (CheckRepoID(s) == nil) != ValidRepoID(s) {
			t.Fatalf("ValidRepoID(%q) = %v", s, ValidRepoID(s))
		}
		if b, ok := BinaryID(s); ok != ValidID(s) || ok && hex.EncodeToString(b[:]) != s {
			t.Fatalf("BinaryID(%q) = %x, %v", s, b, ok)
		}
	})
}
