package seafhttptest

import (
	"bytes"
	"compress/zlib"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"seafbak/internal/seafgen"
)

// bigLibrary writes a library whose fs objects add up to several MiB:
// small files (one block each) in directories of 100, and large files (a
// thousand block ids each, so about 22 KB compressed). The JSON is
// Seafile's exact format (seafgen.EncodeDir/EncodeFile), compressed at
// zlib's fastest level to keep the test quick under -race (the file server
// serves whatever bytes are stored); the blocks themselves are not written,
// as pack-fs and fs-id-list never read them.
// Returns the library id and its head commit.
func bigLibrary(t *testing.T, dataDir string, f *fixture, smallFiles, bigFiles int) (string, string) {
	t.Helper()
	repoID := "b16b16b1-0000-4000-8000-000000000001"
	rng := rand.NewChaCha8([32]byte{42})
	randID := func() string {
		var b [20]byte
		rng.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	var buf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&buf, zlib.BestSpeed) // one writer: each new one allocates ~1 MiB
	writeFS := func(js []byte) string {
		id := seafgen.ObjectID(js)
		buf.Reset()
		zw.Reset(&buf)
		zw.Write(js)
		zw.Close()
		p := filepath.Join(dataDir, "storage", "fs", repoID, id[:2], id[2:])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return id
	}
	file := func(blocks int) (string, int64) {
		ids := make([]string, blocks)
		for i := range ids {
			ids[i] = randID()
		}
		js, err := seafgen.EncodeFile(ids, int64(blocks)*1000)
		if err != nil {
			t.Fatal(err)
		}
		return writeFS(js), int64(blocks) * 1000
	}
	dir := func(ents []seafgen.Dirent) string {
		js, err := seafgen.EncodeDir(ents)
		if err != nil {
			t.Fatal(err)
		}
		return writeFS(js)
	}
	const mtime = 1_700_000_000
	var top []seafgen.Dirent
	for d := 0; d*100 < smallFiles; d++ {
		var ents []seafgen.Dirent
		for i := d * 100; i < min(smallFiles, (d+1)*100); i++ {
			id, size := file(1)
			ents = append(ents, seafgen.Dirent{ID: id, Mode: seafgen.ModeFile, Modifier: realOwner, Mtime: mtime, Name: fmt.Sprintf("small-%05d.txt", i), Size: size})
		}
		top = append(top, seafgen.Dirent{ID: dir(ents), Mode: seafgen.ModeDir, Mtime: mtime, Name: fmt.Sprintf("dir-%03d", d)})
	}
	var bigs []seafgen.Dirent
	for i := 0; i < bigFiles; i++ {
		id, size := file(1000)
		bigs = append(bigs, seafgen.Dirent{ID: id, Mode: seafgen.ModeFile, Modifier: realOwner, Mtime: mtime, Name: fmt.Sprintf("big-%03d.bin", i), Size: size})
	}
	top = append(top, seafgen.Dirent{ID: dir(bigs), Mode: seafgen.ModeDir, Mtime: mtime, Name: "big"})
	root := dir(top)

	creator, desc := "0123456789012345678901234567890123456789", "Added big files"
	c := map[string]any{
		"commit_id": seafgen.CommitIDWithNUL(root, creator, realOwner, desc, mtime), "repo_id": repoID,
		"root_id": root, "creator_name": realOwner, "creator": creator, "description": desc,
		"ctime": mtime, "parent_id": nil, "second_parent_id": nil, "repo_name": "big",
		"repo_desc": "", "repo_category": "", "version": 1,
	}
	head := c["commit_id"].(string)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dataDir, "storage", "commits", repoID, head[:2], head[2:])
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, js, 0o644); err != nil {
		t.Fatal(err)
	}
	exec(t, f.db, "INSERT INTO Repo (repo_id) VALUES (?)", repoID)
	exec(t, f.db, "INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', ?, ?)", repoID, head)
	exec(t, f.db, "INSERT INTO RepoOwner (repo_id, owner_id) VALUES (?, ?)", repoID, realOwner)
	return repoID, head
}

// TestPackFSCutoff fetches a library of about 3 MiB of fs objects with
// pack-fs: each answer stops once its objects reach 1 MiB (the object that
// crosses the line is included), and asking again for the rest gets
// everything.
func TestPackFSCutoff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	repoID, head := bigLibrary(t, f.dataDir, f, 600, 120)
	f.token = addToken(t, f.db, repoID, realOwner)

	r := f.get(repoPath(repoID, "fs-id-list/?server-head="+head))
	if r.code != 200 {
		t.Fatalf("fs-id-list: %d %q", r.code, r.body)
	}
	var ids []string
	if err := json.Unmarshal(r.body, &ids); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1+6+600+1+120 {
		t.Fatalf("fs-id-list: %d ids", len(ids))
	}
	sizes := map[string]int{}
	total := 0
	for _, id := range ids {
		sizes[id] = len(f.readObject("fs", repoID, id))
		total += sizes[id]
	}
	size := func(id string) int { return sizes[id] }
	if total < 5<<19 {
		t.Fatalf("only %d bytes of fs objects", total)
	}

	// What the server should do, computed from the object sizes.
	var wantCalls []int
	for rest := ids; len(rest) > 0; {
		sum, n := 0, 0
		for _, id := range rest {
			sum += size(id)
			n++
			if sum >= 1<<20 {
				break
			}
		}
		wantCalls = append(wantCalls, n)
		rest = rest[n:]
	}
	if len(wantCalls) < 3 {
		t.Fatalf("want at least 3 pack-fs calls, plan is %v", wantCalls)
	}

	f.srv.ResetRequests()
	got := map[string]bool{}
	rest := ids
	for call := 0; len(rest) > 0; call++ {
		r := f.post(repoPath(repoID, "pack-fs/"), jsonList(rest...))
		if r.code != 200 {
			t.Fatalf("pack-fs call %d: %d %q", call, r.code, r.body)
		}
		recs, err := parsePack(r.body)
		if err != nil {
			t.Fatalf("pack-fs call %d: %v", call, err)
		}
		if call >= len(wantCalls) || len(recs) != wantCalls[call] {
			t.Fatalf("pack-fs call %d answered %d objects, plan %v", call, len(recs), wantCalls)
		}
		sum := 0
		for i, rec := range recs {
			if rec.id != rest[i] {
				t.Fatalf("call %d record %d is %s, want %s", call, i, rec.id, rest[i])
			}
			if !bytes.Equal(rec.data, f.readObject("fs", repoID, rec.id)) {
				t.Fatalf("record %s differs from the stored object", rec.id)
			}
			sum += len(rec.data)
			got[rec.id] = true
		}
		if len(recs) < len(rest) {
			last := len(recs[len(recs)-1].data)
			if sum < 1<<20 || sum-last >= 1<<20 {
				t.Errorf("call %d: %d object bytes, last %d: not cut at the first object reaching 1 MiB", call, sum, last)
			}
		}
		rest = rest[len(recs):]
	}
	if len(got) != len(ids) {
		t.Errorf("got %d distinct objects of %d", len(got), len(ids))
	}
	if n := f.srv.Requests(RoutePackFS); n != len(wantCalls) {
		t.Errorf("Requests(pack-fs) = %d, want %d", n, len(wantCalls))
	}

	// Ids beyond the cut-off are neither read nor checked: a missing or
	// malformed one there goes unnoticed; one before it fails the request.
	after := append(append([]string{}, ids[:wantCalls[0]]...), missingID, "bad")
	r = f.post(repoPath(repoID, "pack-fs/"), jsonList(after...))
	if recs, err := parsePack(r.body); r.code != 200 || err != nil || len(recs) != wantCalls[0] {
		t.Errorf("missing id after the cut-off: %d, %d records, %v", r.code, len(recs), err)
	}
	before := append([]string{ids[0], missingID}, ids[1:wantCalls[0]]...)
	f.want(f.post(repoPath(repoID, "pack-fs/"), jsonList(before...)), 500, "\n")
}
