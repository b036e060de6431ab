package seafhttptest

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/seafgen"
)

// asUser sends GET with token.
func (f *fixture) asUser(token, path string) resp {
	f.t.Helper()
	return f.do(http.MethodGet, path, nil, "Seafile-Repo-Token", token)
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{Logf: t.Logf})
	commit := repoPath(realRepo, "commit/"+cHead)
	// A token of a user without any permission: 403 with an empty message
	// everywhere a permission is checked.
	mallory := addToken(t, f.db, realRepo, "mallory@example.com")
	f.want(f.asUser(mallory, commit), 403, "\n")
	f.want(f.asUser(mallory, repoPath(realRepo, "block/"+f.blockIDs()[0])), 403, "\n")
	f.want(f.asUser(mallory, repoPath(realRepo, "fs-id-list/?server-head="+cHead)), 403, "\n")
	f.want(f.do(http.MethodPost, repoPath(realRepo, "pack-fs/"), []byte("[]"), "Seafile-Repo-Token", mallory), 403, "\n")
	f.want(f.asUser(mallory, repoPath(realRepo, "permission-check/?op=download")), 403, "\n")

	// Shared read-only: download yes, upload no.
	alice := addToken(t, f.db, realRepo, "alice@example.com")
	exec(t, f.db, "INSERT INTO SharedRepo (repo_id, from_email, to_email, permission) VALUES (?, ?, ?, 'r')", realRepo, realOwner, "ALICE@example.com")
	f.want(f.asUser(alice, commit), 200, string(f.readObject("commits", realRepo, cHead)))
	f.want(f.asUser(alice, repoPath(realRepo, "permission-check/?op=download")), 200, "")
	f.want(f.asUser(alice, repoPath(realRepo, "permission-check/?op=upload")), 403, "\n")
	f.want(f.get(repoPath(realRepo, "permission-check/?op=upload")), 200, "")

	// The owner is compared as an exact string (SharedRepo.to_email above
	// matched through the case-insensitive collation).
	bobUpper := addToken(t, f.db, realRepo, "Bob@example.com")
	f.want(f.asUser(bobUpper, commit), 403, "\n")

	// Libraries shared with everybody (InnerPubRepo) are readable by all,
	// except in cloud mode.
	exec(t, f.db, "INSERT INTO InnerPubRepo (repo_id, permission) VALUES (?, 'r')", realRepo)
	f.want(f.asUser(mallory, commit), 200, string(f.readObject("commits", realRepo, cHead)))
	cloud := New(f.dataDir, f.db, Options{CloudMode: true, Logf: t.Logf})
	cloudURL, err := cloud.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	g := &fixture{t: t, url: cloudURL, client: f.client, dataDir: f.dataDir}
	g.want(g.asUser(mallory, commit), 403, "\n")
	g.want(g.asUser(f.token, commit), 200, string(f.readObject("commits", realRepo, cHead)))

	// A token belongs to one library.
	other := "0ddba11e-0000-4000-8000-000000000002"
	exec(t, f.db, "INSERT INTO Repo (repo_id) VALUES (?)", other)
	exec(t, f.db, "INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', ?, ?)", other, cHead)
	f.want(f.get(repoPath(other, "commit/HEAD")), 403, "Failed to get email by token "+f.token+"\n")
}

func TestGroupPermission(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	commit := repoPath(realRepo, "commit/"+cHead)
	carol := addToken(t, f.db, realRepo, "carol@example.com")
	exec(t, f.db, "INSERT INTO `Group` (group_id, group_name, creator_name, timestamp, type, parent_group_id) VALUES (7, 'team', 'bob@example.com', 1, NULL, 0)")
	exec(t, f.db, "INSERT INTO GroupUser (group_id, user_name, is_staff) VALUES (7, 'carol@example.com', 0)")
	exec(t, f.db, "INSERT INTO RepoGroup (repo_id, group_id, user_name, permission) VALUES (?, 7, ?, 'r')", realRepo, realOwner)
	// Without the ccnet database, group shares grant nothing.
	f.want(f.asUser(carol, commit), 403, "\n")
	withCcnet := New(f.dataDir, f.db, Options{CcnetDB: f.db, Logf: t.Logf})
	url, err := withCcnet.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer withCcnet.Close()
	g := &fixture{t: t, url: url, client: f.client, dataDir: f.dataDir}
	g.want(g.asUser(carol, commit), 200, string(f.readObject("commits", realRepo, cHead)))
	// A group row with a NULL parent_group_id does not scan in the file
	// server, so its members get nothing from it.
	exec(t, f.db, "UPDATE `Group` SET parent_group_id = NULL WHERE group_id = 7")
	g.want(g.asUser(carol, commit), 403, "\n")
}

// TestOrgRepoOwner: the Go file server's permission check reads RepoOwner,
// not OrgRepo, so the owner of an organisation library (OrgRepo row only)
// is refused.
func TestOrgRepoOwner(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	exec(t, f.db, "DELETE FROM RepoOwner WHERE repo_id = ?", realRepo)
	exec(t, f.db, "INSERT INTO OrgRepo (org_id, repo_id, user) VALUES (1, ?, ?)", realRepo, realOwner)
	f.want(f.get(repoPath(realRepo, "commit/"+cHead)), 403, "\n")
}

func TestPermissionCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	p := repoPath(realRepo, "permission-check/")
	r := f.get(p + "?op=download")
	f.want(r, 200, "")
	f.want(f.get(repoPath(realRepo, "permission-check?op=download&client_id="+cHead+"&client_ver=8.0.10&client_name=x")), 200, "")
	f.want(f.get(p+"?op=read"), 400, "op is invalid\n")
	f.want(f.get(p), 400, "op is invalid\n")
	f.want(f.get(p+"?op=download&client_id=short"), 400, "client_id is invalid\n")
	f.want(f.get(p+"?op=download&client_ver=8.0"), 400, "client_ver is invalid\n")
	// Deleted (no Repo row, or no master branch): 444, before the token.
	f.want(f.do(http.MethodGet, repoPath("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "permission-check/?op=download"), nil), 444, "repo was deleted\n")
	noBranch := "11111111-2222-3333-4444-555555555555"
	exec(t, f.db, "INSERT INTO Repo (repo_id) VALUES (?)", noBranch)
	f.want(f.do(http.MethodGet, repoPath(noBranch, "permission-check/?op=download"), nil), 444, "repo was deleted\n")
	// Corrupted (head commit missing): 445; fs-id-list then fails with 500
	// while commit/HEAD still answers.
	exec(t, f.db, "UPDATE Branch SET commit_id = ? WHERE repo_id = ?", missingID, realRepo)
	f.want(f.do(http.MethodGet, p+"?op=download", nil), 445, "repo was corrupted\n")
	f.want(f.get(repoPath(realRepo, "fs-id-list/?server-head="+cHead)), 500, "\n")
	f.want(f.get(repoPath(realRepo, "commit/HEAD")), 200, `{"is_corrupted": 0, "head_commit_id": "`+missingID+`"}`)
	// Read-only library status refuses upload, not download.
	exec(t, f.db, "UPDATE Branch SET commit_id = ? WHERE repo_id = ?", realHead, realRepo)
	exec(t, f.db, "UPDATE RepoInfo SET status = 1 WHERE repo_id = ?", realRepo)
	f.want(f.get(p+"?op=upload"), 403, "\n")
	f.want(f.get(p+"?op=download"), 200, "")
}

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestCache(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	f := newFixture(t, Options{CacheTTL: 2 * time.Hour, Now: clock.now})
	commit := repoPath(realRepo, "commit/"+cHead)
	ok := string(f.readObject("commits", realRepo, cHead))

	// A revoked token keeps working while cached...
	f.want(f.get(commit), 200, ok)
	exec(t, f.db, "DELETE FROM RepoUserToken WHERE token = ?", f.token)
	f.want(f.get(commit), 200, ok)
	clock.advance(time.Hour)
	f.want(f.get(commit), 200, ok)
	// ...until it expires (2 h after it was stored, not after last use).
	clock.advance(time.Hour)
	f.want(f.get(commit), 403, "Failed to get email by token "+f.token+"\n")

	// permission-check bypasses the cache, and a failed lookup evicts the
	// token for everybody.
	f.token = addToken(t, f.db, realRepo, realOwner)
	f.want(f.get(commit), 200, ok)
	exec(t, f.db, "DELETE FROM RepoUserToken WHERE token = ?", f.token)
	f.want(f.get(commit), 200, ok)
	f.want(f.get(repoPath(realRepo, "permission-check/?op=download")), 403, "Failed to get email by token "+f.token+"\n")
	f.want(f.get(commit), 403, "Failed to get email by token "+f.token+"\n")

	// Permissions are cached per library, user and operation.
	f.token = addToken(t, f.db, realRepo, realOwner)
	f.want(f.get(commit), 200, ok)
	exec(t, f.db, "UPDATE RepoOwner SET owner_id = 'someone@example.com' WHERE repo_id = ?", realRepo)
	f.want(f.get(commit), 200, ok)
	f.srv.ClearCaches()
	f.want(f.get(commit), 403, "\n")
	exec(t, f.db, "UPDATE RepoOwner SET owner_id = ? WHERE repo_id = ?", realOwner, realRepo)

	// The token cache is keyed by the token alone: a cached token shown
	// for another library is "Invalid token" even if it is valid there.
	other := "0ddba11e-0000-4000-8000-000000000002"
	exec(t, f.db, "INSERT INTO Repo (repo_id) VALUES (?)", other)
	exec(t, f.db, "INSERT INTO Branch (name, repo_id, commit_id) VALUES ('master', ?, ?)", other, cHead)
	exec(t, f.db, "INSERT INTO RepoUserToken (repo_id, email, token) VALUES (?, ?, ?)", other, realOwner, f.token)
	f.want(f.get(commit), 200, ok)
	f.want(f.get(repoPath(other, "commit/HEAD")), 403, "Invalid token\n")

	// TTL 0: every request reads the database.
	f.srv.SetCacheTTL(0)
	f.srv.ClearCaches()
	f.want(f.get(repoPath(other, "commit/HEAD")), 200, `{"is_corrupted": 0, "head_commit_id": "`+cHead+`"}`)
	f.want(f.get(commit), 200, ok)
	exec(t, f.db, "DELETE FROM RepoUserToken WHERE token = ? AND repo_id = ?", f.token, realRepo)
	f.want(f.get(commit), 403, "Failed to get email by token "+f.token+"\n")
}

// TestVirtualLibrary: a sub-folder synced as a library of its own. Its
// commits are under its own id, its fs objects and blocks under the
// origin's; permission follows the origin (owner, folder shares).
func TestVirtualLibrary(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	ctx := context.Background()
	g := seafgen.New(f.dataDir)
	g.BlockSize = 4
	origin, err := g.NewLibrary(seafgen.LibraryOptions{Owner: "dave@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Commit("add", seafgen.Put("docs/a.txt", []byte("hello world")),
		seafgen.Put("docs/sub/b.txt", []byte("deeper")), seafgen.Put("other.txt", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	v, err := g.NewVirtualLibrary(origin, "/docs", "")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := g.NewVirtualLibrary(origin, "/docs/sub", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*seafgen.Library{origin, v, v2} {
		if err := l.InsertRows(ctx, f.db); err != nil {
			t.Fatal(err)
		}
	}
	dave := addToken(t, f.db, v.ID, "dave@example.com")
	f.want(f.asUser(dave, repoPath(v.ID, "commit/HEAD")), 200, `{"is_corrupted": 0, "head_commit_id": "`+v.Head+`"}`)
	f.want(f.asUser(dave, repoPath(v.ID, "commit/"+v.Head)), 200, string(f.readObject("commits", v.ID, v.Head)))
	// The origin's commits are not the virtual library's.
	f.want(f.asUser(dave, repoPath(v.ID, "commit/"+origin.Head)), 404, "\n")

	root, err := v.RootID(v.Head)
	if err != nil {
		t.Fatal(err)
	}
	r := f.asUser(dave, repoPath(v.ID, "fs-id-list/?server-head="+v.Head))
	var ids []string
	if r.code != 200 || json.Unmarshal(r.body, &ids) != nil || len(ids) != 4 || ids[0] != root {
		t.Fatalf("fs-id-list: %d %s", r.code, r.body)
	}
	r = f.do(http.MethodPost, repoPath(v.ID, "pack-fs/"), []byte(jsonList(ids...)), "Seafile-Repo-Token", dave)
	recs, err := parsePack(r.body)
	if r.code != 200 || err != nil || len(recs) != 4 {
		t.Fatalf("pack-fs: %d %v", r.code, err)
	}
	for _, rec := range recs {
		if string(rec.data) != string(f.readObject("fs", origin.ID, rec.id)) {
			t.Errorf("fs object %s not from the origin's store", rec.id)
		}
	}
	block := seafgen.ObjectID([]byte("hell"))
	f.want(f.asUser(dave, repoPath(v.ID, "block/"+block)), 200, "hell")
	f.want(f.do(http.MethodPost, repoPath(v.ID, "check-blocks/"), []byte(jsonList(block, missingID)), "Seafile-Repo-Token", dave), 200, jsonList(missingID))

	// The virtual library's own RepoOwner row does not count...
	erin := addToken(t, f.db, v.ID, "erin@example.com")
	exec(t, f.db, "UPDATE RepoOwner SET owner_id = 'erin@example.com' WHERE repo_id = ?", v.ID)
	f.want(f.asUser(erin, repoPath(v.ID, "commit/"+v.Head)), 403, "\n")
	// ...a share of the folder does, and covers folders below it.
	exec(t, f.db, "INSERT INTO SharedRepo (repo_id, from_email, to_email, permission) VALUES (?, 'dave@example.com', 'erin@example.com', 'r')", v.ID)
	f.want(f.asUser(erin, repoPath(v.ID, "commit/"+v.Head)), 200, string(f.readObject("commits", v.ID, v.Head)))
	erin2 := addToken(t, f.db, v2.ID, "erin@example.com")
	f.want(f.asUser(erin2, repoPath(v2.ID, "commit/"+v2.Head)), 200, string(f.readObject("commits", v2.ID, v2.Head)))
	// The origin owner may read every virtual library of it.
	dave2 := addToken(t, f.db, v2.ID, "dave@example.com")
	f.want(f.asUser(dave2, repoPath(v2.ID, "permission-check/?op=download")), 200, "")
}
