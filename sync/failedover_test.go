package sync_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"seafbak/internal/seafgen"
	"seafbak/internal/testenv"
	"seafbak/state"
)

// Once a failover made the backup's database Seafile's, a sync (a watch started before
// it, a hook left set) copies what it may but moves no row: the users of the failed-over
// server edit those libraries now. Removing the record lets syncs move rows again.
func TestNoRowMovesAfterAFailover(t *testing.T) {
	env := testenv.New(t, srv)
	g := seafgen.New(env.PrimaryDir)
	lib, err := g.NewLibrary(seafgen.LibraryOptions{Name: "Live"})
	must(t, err)
	testenv.Commit(t, lib, "one", seafgen.Put("a.txt", []byte("a")))
	env.Publish(lib)
	eng := env.Engine(false)
	testenv.SyncOK(t, eng, lib.ID)
	served := lib.Head

	must(t, env.State.SaveFailedOver(state.FailedOver{At: time.Now(), DumpSet: "set"}))
	testenv.Commit(t, lib, "two", seafgen.Put("b.txt", []byte("b")))
	env.Publish(lib)
	_, err = eng.Sync(context.Background(), lib.ID)
	if !errors.Is(err, state.ErrFailedOver) {
		t.Fatalf("sync after a failover: %v", err)
	}
	if got := env.BackupHead(lib.ID); got != served {
		t.Fatalf("Branch row moved to %s after the failover, want %s", got, served)
	}

	must(t, os.Remove(env.State.FailedOverPath()))
	testenv.SyncOK(t, eng, lib.ID)
	if got := env.BackupHead(lib.ID); got != lib.Head {
		t.Fatalf("Branch row %s once the record is gone, want %s", got, lib.Head)
	}
}
