package seafhttptest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

const missingID = "1234567890123456789012345678901234567890"

func TestProtocolVersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	for _, p := range []string{"/protocol-version", "/protocol-version/"} {
		r := f.do(http.MethodGet, p, nil)
		f.want(r, 200, `{"version": 2}`)
		if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	f.want(f.do(http.MethodGet, "/protocol-versionx", nil), 404, "404 page not found\n")
	if n := f.srv.Requests(RouteProtocolVersion); n != 2 {
		t.Errorf("Requests(protocol-version) = %d, want 2", n)
	}
	if n := f.srv.Requests(RouteNotFound); n != 1 {
		t.Errorf("Requests(not-found) = %d, want 1", n)
	}
}

func TestPrefix(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{Prefix: "/seafhttp"})
	if !strings.HasSuffix(f.url, "/seafhttp") {
		t.Fatalf("base URL %q", f.url)
	}
	f.want(f.do(http.MethodGet, "/protocol-version", nil), 200, `{"version": 2}`)
	f.want(f.get(repoPath(realRepo, "commit/HEAD")), 200, `{"is_corrupted": 0, "head_commit_id": "`+realHead+`"}`)
	// Outside the prefix: nothing.
	f.url = strings.TrimSuffix(f.url, "/seafhttp")
	f.want(f.do(http.MethodGet, "/protocol-version", nil), 404, "404 page not found\n")
	f.want(f.do(http.MethodGet, "/seafhttpx/protocol-version", nil), 404, "404 page not found\n")
	// mux's redirect of unclean paths keeps the prefix.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := f.try(c, http.MethodGet, "/seafhttp//protocol-version", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusMovedPermanently || r.header.Get("Location") != "/seafhttp/protocol-version" {
		t.Errorf("unclean path: %d Location %q", r.code, r.header.Get("Location"))
	}
}

func TestHeadCommitsMulti(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	// A library with a Repo row but no master branch is absent; so is an
	// unknown one. No token needed.
	noBranch := "11111111-2222-3333-4444-555555555555"
	exec(t, f.db, "INSERT INTO Repo (repo_id) VALUES (?)", noBranch)
	body := fmt.Sprintf(`["%s", "%s", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]`, realRepo, noBranch)
	r := f.do(http.MethodPost, "/repo/head-commits-multi/", []byte(body))
	f.want(r, 200, `{"`+realRepo+`":"`+realHead+`"}`)
	if r.header.Get("Content-Length") != fmt.Sprint(len(r.body)) {
		t.Errorf("Content-Length %q", r.header.Get("Content-Length"))
	}
	// Without the trailing slash too.
	f.want(f.do(http.MethodPost, "/repo/head-commits-multi", []byte(body)), 200, `{"`+realRepo+`":"`+realHead+`"}`)
	// Nothing known: an empty object.
	f.want(f.do(http.MethodPost, "/repo/head-commits-multi/", []byte(`["`+noBranch+`"]`)), 200, `{}`)
	// Upper-case UUIDs pass the file server's lax check and match through
	// the case-insensitive collation; the answer has the stored id.
	f.want(f.do(http.MethodPost, "/repo/head-commits-multi/", []byte(`["`+strings.ToUpper(realRepo)+`"]`)), 200,
		`{"`+realRepo+`":"`+realHead+`"}`)
	// Empty list, a non-UUID, bad JSON, no body: 400 with an empty message.
	for _, b := range []string{`[]`, `["` + realRepo + `", "nope"]`, `{`, ``, `null`} {
		f.want(f.do(http.MethodPost, "/repo/head-commits-multi/", []byte(b)), 400, "\n")
	}
}

func TestHeadCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	p := repoPath(realRepo, "commit/HEAD")
	f.want(f.get(p), 200, `{"is_corrupted": 0, "head_commit_id": "`+realHead+`"}`)
	f.want(f.get(p+"/"), 200, `{"is_corrupted": 0, "head_commit_id": "`+realHead+`"}`)
	// Authorization: Token <t> works as well (any scheme word, in fact).
	f.want(f.do(http.MethodGet, p, nil, "Authorization", "Token "+f.token), 200, `{"is_corrupted": 0, "head_commit_id": "`+realHead+`"}`)
	// No token: 400; unknown token: 403.
	f.want(f.do(http.MethodGet, p, nil), 400, "token is null\n")
	f.want(f.do(http.MethodGet, p, nil, "Seafile-Repo-Token", "nope"), 403, "Failed to get email by token nope\n")
	// No Repo row: 444 even without a token (checked first).
	gone := repoPath("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "commit/HEAD")
	f.want(f.do(http.MethodGet, gone, nil), 444, "\n")
	f.want(f.get(gone), 444, "\n")
	// Repo row without master branch: 400.
	noBranch := "11111111-2222-3333-4444-555555555555"
	exec(t, f.db, "INSERT INTO Repo (repo_id) VALUES (?)", noBranch)
	tok := addToken(t, f.db, noBranch, realOwner)
	f.want(f.do(http.MethodGet, repoPath(noBranch, "commit/HEAD"), nil, "Seafile-Repo-Token", tok), 400, "\n")
	// Only the token is checked, not the permission: a token of a user
	// without any permission still reads the head.
	stranger := addToken(t, f.db, realRepo, "mallory@example.com")
	f.want(f.do(http.MethodGet, p, nil, "Seafile-Repo-Token", stranger), 200, `{"is_corrupted": 0, "head_commit_id": "`+realHead+`"}`)
	// Methods other than GET and PUT: 400.
	f.want(f.do(http.MethodDelete, p, nil, "Seafile-Repo-Token", f.token), 400, "\n")
	// Malformed library id: no route.
	f.want(f.get(repoPath(strings.ToUpper(realRepo), "commit/HEAD")), 404, "404 page not found\n")
}

func TestHeadCommitDatabaseError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	db, err := dbsrv.Open("")
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := New(f.dataDir, db, Options{Logf: t.Logf})
	f.srv.Close()
	f.srv = s
	if f.url, err = s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f.want(f.get(repoPath(realRepo, "commit/HEAD")), 200, `{"is_corrupted": 1}`)
}

func TestCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	for _, id := range []string{cHead, cMerge, cFirst} {
		r := f.get(repoPath(realRepo, "commit/"+id))
		want := f.readObject("commits", realRepo, id)
		if r.code != 200 || string(r.body) != string(want) {
			t.Errorf("commit %s: %d %q", id, r.code, r.body)
		}
		if r.header.Get("Content-Length") != fmt.Sprint(len(want)) {
			t.Errorf("Content-Length %q", r.header.Get("Content-Length"))
		}
	}
	f.want(f.get(repoPath(realRepo, "commit/"+missingID)), 404, "\n")
	// Ids the route does not accept: mux 404.
	f.want(f.get(repoPath(realRepo, "commit/"+strings.ToUpper(cHead))), 404, "404 page not found\n")
	f.want(f.get(repoPath(realRepo, "commit/"+cHead[:39])), 404, "404 page not found\n")
	f.want(f.get(repoPath(realRepo, "commit/"+cHead+"/")), 404, "404 page not found\n")
	// [\da-z]{40} but not hex: routed, then simply not found.
	f.want(f.get(repoPath(realRepo, "commit/"+strings.Repeat("z", 40))), 404, "\n")
	// Auth.
	f.want(f.do(http.MethodGet, repoPath(realRepo, "commit/"+cHead), nil), 400, "token is null\n")
	f.want(f.do(http.MethodHead, repoPath(realRepo, "commit/"+cHead), nil, "Seafile-Repo-Token", f.token), 400, "")
}

func TestBlock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	blocks := f.blockIDs()
	if len(blocks) != 12 {
		t.Fatalf("%d blocks", len(blocks))
	}
	for _, id := range blocks {
		r := f.get(repoPath(realRepo, "block/"+id))
		want := f.readObject("blocks", realRepo, id)
		if r.code != 200 || string(r.body) != string(want) {
			t.Errorf("block %s: %d, %d bytes", id, r.code, len(r.body))
		}
		if r.header.Get("Content-Length") != fmt.Sprint(len(want)) {
			t.Errorf("Content-Length %q", r.header.Get("Content-Length"))
		}
	}
	// Missing block: 500, not 404.
	f.want(f.get(repoPath(realRepo, "block/"+missingID)), 500, "\n")
	f.want(f.get(repoPath(realRepo, "block/"+strings.Repeat("z", 40))), 500, "\n")
	f.want(f.get(repoPath(realRepo, "block/"+strings.ToUpper(blocks[0]))), 404, "404 page not found\n")
	f.want(f.do(http.MethodGet, repoPath(realRepo, "block/"+blocks[0]), nil, "Seafile-Repo-Token", "x"), 403, "Failed to get email by token x\n")
}

// blockIDs lists the real library's blocks.
func (f *fixture) blockIDs() []string {
	f.t.Helper()
	return f.storeIDs("blocks", realRepo)
}

func (f *fixture) storeIDs(kind, store string) []string {
	f.t.Helper()
	var ids []string
	dirs, err := readDirNames(f.dataDir + "/storage/" + kind + "/" + store)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, d := range dirs {
		names, err := readDirNames(f.dataDir + "/storage/" + kind + "/" + store + "/" + d)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, n := range names {
			ids = append(ids, d+n)
		}
	}
	return ids
}

type packRecord struct {
	id   string
	data []byte
}

// parsePack splits a pack-fs answer into records; it fails on a cut record.
func parsePack(b []byte) ([]packRecord, error) {
	var recs []packRecord
	for len(b) > 0 {
		if len(b) < 44 {
			return recs, fmt.Errorf("short record header (%d bytes)", len(b))
		}
		n := int(binary.BigEndian.Uint32(b[40:44]))
		if len(b) < 44+n {
			return recs, fmt.Errorf("record %s: %d of %d bytes", b[:40], len(b)-44, n)
		}
		recs = append(recs, packRecord{id: string(b[:40]), data: b[44 : 44+n]})
		b = b[44+n:]
	}
	return recs, nil
}

func jsonList(ids ...string) string {
	b, _ := json.Marshal(ids)
	return string(b)
}

func TestPackFS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	ids := f.storeIDs("fs", realRepo)
	if len(ids) != 19 {
		t.Fatalf("%d fs objects", len(ids))
	}
	r := f.post(repoPath(realRepo, "pack-fs/"), jsonList(ids...))
	if r.code != 200 {
		t.Fatalf("pack-fs: %d %q", r.code, r.body)
	}
	if r.header.Get("Content-Length") != fmt.Sprint(len(r.body)) {
		t.Errorf("Content-Length %q for %d bytes", r.header.Get("Content-Length"), len(r.body))
	}
	recs, err := parsePack(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(ids) {
		t.Fatalf("%d records for %d ids", len(recs), len(ids))
	}
	for i, rec := range recs {
		if rec.id != ids[i] {
			t.Errorf("record %d is %s, want %s (request order)", i, rec.id, ids[i])
		}
		if want := f.readObject("fs", realRepo, rec.id); string(rec.data) != string(want) {
			t.Errorf("record %s: bytes differ from the stored object", rec.id)
		}
	}
	// Duplicates are answered twice; no trailing slash works too.
	r = f.post(repoPath(realRepo, "pack-fs"), jsonList(ids[0], ids[0]))
	if recs, err := parsePack(r.body); err != nil || len(recs) != 2 {
		t.Errorf("duplicate ids: %d records, %v", len(recs), err)
	}
	// One missing id fails the whole request; so does the empty id.
	f.want(f.post(repoPath(realRepo, "pack-fs/"), jsonList(ids[0], missingID, ids[1])), 500, "\n")
	f.want(f.post(repoPath(realRepo, "pack-fs/"), jsonList(emptyID)), 500, "\n")
	// Malformed ids: 400 with the id.
	f.want(f.post(repoPath(realRepo, "pack-fs/"), jsonList(ids[0], "XYZ")), 400, "Invalid fs id XYZ\n")
	f.want(f.post(repoPath(realRepo, "pack-fs/"), jsonList(strings.ToUpper(ids[0]))), 400, "Invalid fs id "+strings.ToUpper(ids[0])+"\n")
	// Undecodable body: 400 with the decoder's message.
	f.want(f.post(repoPath(realRepo, "pack-fs/"), `[1]`), 400, "json: cannot unmarshal number into Go value of type string\n")
	f.want(f.post(repoPath(realRepo, "pack-fs/"), ``), 400, "EOF\n")
	// Nothing asked: an empty 200.
	r = f.post(repoPath(realRepo, "pack-fs/"), `[]`)
	f.want(r, 200, "")
	if r.header.Get("Content-Length") != "0" {
		t.Errorf("empty pack Content-Length %q", r.header.Get("Content-Length"))
	}
	f.want(f.do(http.MethodPost, repoPath(realRepo, "pack-fs/"), []byte(jsonList(ids[0]))), 400, "token is null\n")
	if n := f.srv.Requests(RoutePackFS); n != 10 {
		t.Errorf("Requests(pack-fs) = %d, want 10", n)
	}
}

func TestCheckFSAndBlocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	fsIDs := f.storeIDs("fs", realRepo)
	blocks := f.blockIDs()
	// The answer lists what the server lacks; invalid ids are skipped; the
	// empty id is "present" as an fs object.
	f.want(f.post(repoPath(realRepo, "check-fs/"), jsonList(fsIDs[0], missingID, "bad", emptyID, fsIDs[1])), 200, jsonList(missingID))
	f.want(f.post(repoPath(realRepo, "check-fs"), jsonList(fsIDs...)), 200, "[]")
	f.want(f.post(repoPath(realRepo, "check-blocks/"), jsonList(blocks[0], missingID, emptyID)), 200, jsonList(missingID, emptyID))
	f.want(f.post(repoPath(realRepo, "check-blocks/"), `[]`), 200, "[]")
	f.want(f.post(repoPath(realRepo, "check-blocks/"), `x`), 400, "invalid character 'x' looking for beginning of value\n")
}

func TestNotImplementedRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.want(f.do(http.MethodPut, repoPath(realRepo, "commit/HEAD?head="+realHead), nil, "Seafile-Repo-Token", f.token), 501, "not implemented by seafhttptest\n")
	f.want(f.post(repoPath(realRepo, "recv-fs/"), ""), 501, "not implemented by seafhttptest\n")
	if n := f.srv.Requests(RouteNotImplemented); n != 1 {
		t.Errorf("Requests(not-implemented) = %d", n)
	}
	if n := f.srv.Requests(RouteHeadCommit); n != 1 {
		t.Errorf("Requests(commit/HEAD) = %d", n)
	}
}
