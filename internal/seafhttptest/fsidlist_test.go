package seafhttptest

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fs ids of the real library's head tree (see testdata/real-library).
const (
	rootHead    = "2487f25bc8ca2ef7570686d3dc00c2f48b81ae6e"
	rootMerge   = "5f29469a0186e0cea198677f33d1fe70fb842c1e"
	fNotes      = "15c804485a6d53ce869684d93fd761fe022110d0"
	fDesktop    = "55e51c3188ed76b14075d916266bd80934e9efc4"
	dDir        = "b825072eb774ff68b66f2641a0924abfcb4a89f2"
	dSub        = "8ec2a504c7a56ff4c87fdd1fc6ffebc3ac038787"
	fDeep       = "4589eef49f4c756d16db3c28d97713db2cc55567"
	dData       = "bc23fd7f404265160c9a83821895ed1203359b9d"
	fTable      = "a249321ff185ac2cca4f8899327928645215e75f"
	fCafe       = "4fdfdd979834f62ea2a4beaa67ef095b3f2d74f1"
	fAfterMerge = "6ffd44a571fe3a01752aa907db5eadaf84ee9e05"
)

func (f *fixture) fsIDList(query string) resp {
	f.t.Helper()
	return f.get(repoPath(realRepo, "fs-id-list/?"+query))
}

func TestFSIDList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	full := jsonList(rootHead, fNotes, fDesktop, dDir, dSub, fDeep, dData, fTable, fCafe, fAfterMerge)
	cases := []struct{ query, want string }{
		// Everything, in the server's order: root first, then per name in
		// descending order the file, or the directory before its contents.
		// empty.txt (the empty id) is not listed.
		{"server-head=" + cHead, full},
		{"server-head=" + cHead + "&client-head=", full},
		{"server-head=" + cHead + "&client-head=" + cFirst, full},
		{"server-head=" + cHead + "&dir-only=1", jsonList(rootHead, dDir, dSub, dData)},
		// One file added since the merge.
		{"server-head=" + cHead + "&client-head=" + cMerge, jsonList(rootHead, fAfterMerge)},
		{"server-head=" + cHead + "&client-head=" + cMerge + "&dir-only=1", jsonList(rootHead)},
		// A rename: the file is listed under its new name although the
		// client has the same object under the old one (a tree diff by
		// path, not a set difference).
		{"server-head=" + cMerge + "&client-head=" + cOffline, jsonList(rootMerge, fCafe)},
		// Nothing to send.
		{"server-head=" + cHead + "&client-head=" + cHead, "[]"},
		{"server-head=" + cFirst, "[]"},
		{"server-head=" + cFirst + "&client-head=" + cHead, "[]"},
	}
	for _, c := range cases {
		r := f.fsIDList(c.query)
		f.want(r, 200, c.want)
		if r.code == 200 && r.header.Get("Content-Length") != itoa(len(r.body)) {
			t.Errorf("%s: Content-Length %q", c.query, r.header.Get("Content-Length"))
		}
	}
	// Bad parameters are 400 (checked before the token); an unknown commit
	// is 500.
	f.want(f.do(http.MethodGet, repoPath(realRepo, "fs-id-list/"), nil), 400, "Invalid server-head parameter.\n")
	f.want(f.fsIDList("server-head="+strings.ToUpper(cHead)), 400, "Invalid server-head parameter.\n")
	f.want(f.do(http.MethodGet, repoPath(realRepo, "fs-id-list/?server-head="+cHead+"&client-head=xyz"), nil), 400, "Invalid client-head parameter.\n")
	f.want(f.fsIDList("server-head="+cHead+"&client-head="+missingID), 500, "\n")
	f.want(f.fsIDList("server-head="+missingID), 500, "\n")
	f.want(f.do(http.MethodGet, repoPath(realRepo, "fs-id-list/?server-head="+cHead), nil), 400, "token is null\n")
	// Without the trailing slash.
	f.want(f.get(repoPath(realRepo, "fs-id-list?server-head="+cHead+"&client-head="+cMerge)), 200, jsonList(rootHead, fAfterMerge))
}

// TestFSIDListCompleteness checks, for every pair of real-library commits,
// that fs-id-list lists only objects of the server tree and that with them
// a client holding the client tree has every object of the server tree.
func TestFSIDListCompleteness(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	commits := readCommitList(t)
	for _, server := range commits {
		serverIDs := f.treeIDs(f.rootOf(server))
		for _, client := range append([]string{""}, commits...) {
			r := f.fsIDList("server-head=" + server + "&client-head=" + client)
			if r.code != 200 {
				t.Fatalf("%s..%s: %d %q", client, server, r.code, r.body)
			}
			var got []string
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			if client != "" {
				for _, id := range f.treeIDs(f.rootOf(client)) {
					have[id] = true
				}
			}
			inServer := map[string]bool{}
			for _, id := range serverIDs {
				inServer[id] = true
			}
			for _, id := range got {
				if !inServer[id] {
					t.Errorf("%s..%s: %s is not in the server tree", client, server, id)
				}
				have[id] = true
			}
			for _, id := range serverIDs {
				if !have[id] {
					t.Errorf("%s..%s: %s neither listed nor in the client tree", client, server, id)
				}
			}
			if client == "" && strings.Join(got, ",") != strings.Join(serverIDs, ",") {
				t.Errorf("%s from nothing: got %v, want %v", server, got, serverIDs)
			}
		}
	}
}

func readCommitList(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(realDir, "commits.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		ids = append(ids, strings.Fields(line)[0])
	}
	return ids
}

func (f *fixture) rootOf(commitID string) string {
	f.t.Helper()
	var c struct {
		RootID string `json:"root_id"`
	}
	if err := json.Unmarshal(f.readObject("commits", realRepo, commitID), &c); err != nil {
		f.t.Fatal(err)
	}
	return c.RootID
}

// treeIDs lists the non-empty fs ids of a tree in pre-order, entries in
// stored order: what fs-id-list answers without client-head.
func (f *fixture) treeIDs(root string) []string {
	f.t.Helper()
	if root == emptyID {
		return nil
	}
	out := []string{root}
	var walk func(id string)
	walk = func(id string) {
		zr, err := zlib.NewReader(bytes.NewReader(f.readObject("fs", realRepo, id)))
		if err != nil {
			f.t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			f.t.Fatal(err)
		}
		var d struct {
			Dirents []struct {
				ID   string `json:"id"`
				Mode uint32 `json:"mode"`
			} `json:"dirents"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			f.t.Fatal(err)
		}
		for _, e := range d.Dirents {
			if e.ID == emptyID {
				continue
			}
			out = append(out, e.ID)
			if e.Mode&0o170000 == 0o040000 {
				walk(e.ID)
			}
		}
	}
	walk(root)
	return out
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
