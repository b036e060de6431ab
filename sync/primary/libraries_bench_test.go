package primary

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
)

// BenchmarkLibraries is one listing of the primary's libraries from its database, as
// every scan and every full poll of a watch makes, and one check of its Print, as a
// watch's poll makes between full comparisons, at 10 000 and 100 000 libraries.
//
//	go test -run '^$' -bench Libraries -benchtime 10x ./sync/primary/
func BenchmarkLibraries(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10000, 100000} {
		db := seafileDB(b)
		if err := fillLibraries(db, n); err != nil {
			b.Fatal(err)
		}
		cat := NewDB(db)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				libs, err := cat.Libraries(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(libs) != n {
					b.Fatalf("%d libraries listed, want %d", len(libs), n)
				}
			}
		})
		// What a watch's poll between full comparisons costs when nothing moved.
		_, p, _, err := cat.LibrariesSince(ctx, Print{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprint(n, "-unchanged"), func(b *testing.B) {
			for range b.N {
				if _, _, changed, err := cat.LibrariesSince(ctx, p); err != nil || changed {
					b.Fatalf("changed %v, %v", changed, err)
				}
			}
		})
	}
}

// fillLibraries writes n libraries' rows as Seafile keeps them: Repo, its master
// Branch, RepoInfo and RepoOwner; one in ten is a virtual library of the one before it.
func fillLibraries(db *sql.DB, n int) error {
	const repoID = `CONCAT(LPAD(LOWER(HEX(seq)), 8, '0'), '-0000-4000-8000-000000000000')`
	seq := fmt.Sprintf("seq_1_to_%d", n)
	for _, q := range []string{
		`INSERT INTO Repo (repo_id) SELECT ` + repoID + ` FROM ` + seq,
		`INSERT INTO Branch (name, repo_id, commit_id) SELECT 'master', ` + repoID + `, SHA1(seq) FROM ` + seq,
		`INSERT INTO RepoInfo (repo_id, name, update_time, version, is_encrypted, last_modifier, status, type)
			SELECT ` + repoID + `, CONCAT('library ', seq), 1764300000 + seq, 1, 0, 'a@example.com', 0, NULL FROM ` + seq,
		`INSERT INTO RepoOwner (repo_id, owner_id) SELECT ` + repoID + `, CONCAT('user', seq MOD 500, '@example.com') FROM ` + seq + ` WHERE seq MOD 10 <> 0`,
		`INSERT INTO VirtualRepo (repo_id, origin_repo, path, base_commit)
			SELECT ` + repoID + `, CONCAT(LPAD(LOWER(HEX(seq - 1)), 8, '0'), '-0000-4000-8000-000000000000'), '/folder', SHA1(seq - 1) FROM ` + seq + ` WHERE seq MOD 10 = 0`,
	} {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("fill %d libraries: %w", n, err)
		}
	}
	return nil
}
