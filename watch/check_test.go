package watch

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/sync/primary"
)

// lookupCountingCatalog counts full listings and single lookups.
type lookupCountingCatalog struct {
	primary.Catalog
	listings, lookups atomic.Int32
}

func (c *lookupCountingCatalog) Libraries(ctx context.Context) ([]primary.Library, error) {
	c.listings.Add(1)
	return c.Catalog.Libraries(ctx)
}

func (c *lookupCountingCatalog) Library(ctx context.Context, id string) (primary.Library, error) {
	c.lookups.Add(1)
	return c.Catalog.Library(ctx, id)
}

// A reported change is looked up alone, not by listing every library; a reported
// library the primary no longer has falls back to a listing, which records it deleted;
// an invalid report lists all.
func TestCheckLooksUpOnlyTheReportedLibrary(t *testing.T) {
	env := testenv.New(t, srv)
	gen := seafgen.New(env.PrimaryDir)
	var libs []*seafgen.Library
	for i := range 3 {
		l, err := gen.NewLibrary(seafgen.LibraryOptions{Name: fmt.Sprint("c", i), Owner: "u@example.com"})
		must(t, err)
		testenv.Commit(t, l, "files", seafgen.Put("a.txt", []byte(fmt.Sprint(i))))
		env.Publish(l)
		libs = append(libs, l)
	}
	cat := &lookupCountingCatalog{Catalog: env.Catalog}
	w := &Watcher{Engine: env.Engine(false), Catalog: cat, State: env.State, Poll: 10 * time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "first backup", func() bool {
		return env.BackupHead(libs[0].ID) == libs[0].Head && env.BackupHead(libs[2].ID) == libs[2].Head
	})
	listings := cat.listings.Load()

	for i := range 3 {
		testenv.Commit(t, libs[1], "edit", seafgen.Put("a.txt", []byte(fmt.Sprint("edit ", i))))
		env.Publish(libs[1])
		w.Check(libs[1].ID)
		waitFor(t, "reported change backed up", func() bool { return env.BackupHead(libs[1].ID) == libs[1].Head })
	}
	if n := cat.listings.Load(); n != listings || cat.lookups.Load() < 3 {
		t.Fatalf("%d more listings and %d lookups for 3 reported changes; want 0 and 3", n-listings, cat.lookups.Load())
	}
	env.CompareWithPrimary(libs[1].ID, libs[1].StoreID, libs[1].Head)

	// Gone: the lookup says so and a listing records the deletion.
	must(t, seafgen.DeleteRows(ctx, env.PrimaryDB, libs[2].ID))
	w.Check(libs[2].ID)
	waitFor(t, "reported deletion recorded", func() bool {
		rec, _, err := env.State.Load(libs[2].ID)
		must(t, err)
		return rec.Deleted != nil
	})
	if cat.listings.Load() == listings {
		t.Fatal("a deletion recorded without a listing")
	}
	listings = cat.listings.Load()
	w.Check("not-a-library-id")
	waitFor(t, "invalid report lists all", func() bool { return cat.listings.Load() > listings })
}
