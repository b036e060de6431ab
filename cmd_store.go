package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"seafbak/config"
	"seafbak/state"
	"seafbak/storecopy"
	"seafbak/sync/object"
)

type storeCmd struct {
	Copy storeCopyCmd `cmd:"" help:"Copy this config's backup store (every library's full history, as the state records it) into the store of another config: a filesystem store to S3 or back. Verified, bottom-up, resumable: run it again after an interruption. Exit 0 ok, 1 some library failed (a corrupt object is named and not copied)."`
}

type storeCopyCmd struct {
	To      string   `required:"" placeholder:"CONFIG" predictor:"file" help:"A seafbak config file whose backup store (backup.store, backup.data_dir or backup.s3) receives the copy; nothing else of it is used."`
	Repos   []string `arg:"" optional:"" name:"repo-id" help:"Libraries to copy (default: every library in the state)."`
	Full    bool     `help:"Do not trust a commit already in the destination to have its history below it: walk every commit's tree (dirs present are still trusted). For a destination written by something else."`
	Recheck bool     `help:"Trust nothing already in the destination: read every object back and compare it (blocks hashed), writing again what is missing or damaged. A copy into a filesystem store that a power loss or OS crash interrupted is re-checked this way by itself on its next run. Implies --full."`
	JSON    bool     `name:"json" help:"Print one JSON document for scripts."`
}

func (c *storeCopyCmd) Run(e *env) error {
	if c.To == "" {
		// A script's unset variable, not the current directory.
		return usagef("--to is empty: give the config file of the store to copy into")
	}
	to, err := config.Load(c.To)
	if err != nil {
		return cantRun(fmt.Errorf("--to: %w", err))
	}
	if sameStore(e.cfg, to) {
		return usagef("--to %s names the backup store this config already uses; nothing to copy", c.To)
	}
	// config.Load gives the environment's S3 secret to every config it reads: from one
	// S3 store to another it would replace the destination's own secret_key.
	if e.cfg.Backup.Store == config.StoreS3 && to.Backup.Store == config.StoreS3 &&
		(os.Getenv(config.EnvS3SecretKey) != "" || os.Getenv(config.EnvS3SecretKey+"_FILE") != "") {
		return usagef("%s is set, and would be the secret key of both the source store and --to %s: for a copy from one S3 store to another, put each secret_key in its own config file and unset it", config.EnvS3SecretKey, c.To)
	}
	for _, id := range c.Repos {
		if err := object.CheckRepoID(id); err != nil {
			return cantRun(err)
		}
	}
	// The copy reads the state; it must not make one on a disk that did not mount.
	st, err := state.OpenExisting(e.cfg.State)
	if err != nil {
		return cantRun(err)
	}
	// --to's own primary.data_dir is a placeholder (nothing else of that file is used):
	// the destination must stay apart from this config's primary.
	if to.Backup.Store != config.StoreS3 && e.cfg.Primary.DataDir != "" {
		if err := checkApart(e.cfg.Primary.DataDir, to.Backup.DataDir); err != nil {
			return cantRun(fmt.Errorf("destination store (%s): %w", c.To, err))
		}
	}
	from, err := openStore(e.ctx, e.cfg, true)
	if err != nil {
		return cantRun(fmt.Errorf("source store: %w", err))
	}
	dst, err := openStore(e.ctx, to, false)
	if err != nil {
		return cantRun(fmt.Errorf("destination store (%s): %w", c.To, err))
	}
	recheck, copied, err := guardCopy(e.ctx, dst, e.log)
	if err != nil {
		return cantRun(err)
	}
	opts := storecopy.Options{From: from, To: dst, State: st, Libraries: c.Repos, Log: e.log, Parallel: max(8, 2*e.cfg.Parallel), Full: c.Full, Recheck: c.Recheck || recheck}
	if f := terminal(e); f != nil {
		opts.Progress = newByteBar(f, "store copy")
	}
	res, err := storecopy.Copy(e.ctx, opts)
	if err == nil || errors.Is(err, storecopy.ErrFailed) {
		// The destination was synced: what it holds is durable, the guard's job done.
		if merr := copied(len(c.Repos) == 0 && err == nil && res.Failed == 0); merr != nil {
			return cantRun(fmt.Errorf("destination store: %w", merr))
		}
	}
	e.run.Bytes, e.run.Objects = res.Copied.Bytes, res.Copied.Objects()
	if err != nil && !errors.Is(err, storecopy.ErrFailed) {
		if e.ctx.Err() != nil {
			return err // interrupted: report says so, exit 130/143
		}
		return cantRun(err)
	}
	if c.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return cantRun(err)
		}
	} else {
		printStoreCopy(e, res)
	}
	if res.Failed > 0 {
		return reported(fmt.Sprintf("%d libraries failed to copy", res.Failed))
	}
	return nil
}

func printStoreCopy(e *env, res storecopy.Result) {
	w := e.stdout
	for _, l := range res.Libraries {
		switch {
		case l.Error != "":
			fmt.Fprintf(w, "%s %s: FAILED: %s\n", l.RepoID, l.Name, l.Error)
		case l.Skipped != "":
			fmt.Fprintf(w, "%s %s: skipped: %s\n", l.RepoID, l.Name, l.Skipped)
		case l.Incomplete > 0:
			fmt.Fprintf(w, "%s %s: %d commits copied without the objects the state records as missing (holes, truncated history)\n", l.RepoID, l.Name, l.Incomplete)
		}
	}
	rate := 0.0
	if res.Seconds > 0 {
		rate = float64(res.Copied.Objects()) / res.Seconds
	}
	fmt.Fprintf(w, "seafbak store copy: %d libraries, %d failed; copied %d commits, %d fs objects, %d blocks (%s); %d objects already there; %.1fs (%.0f objects/s)\n",
		len(res.Libraries), res.Failed, res.Copied.Commits, res.Copied.FSObjects, res.Copied.Blocks, humanBytes(res.Copied.Bytes),
		res.Present.Objects(), res.Seconds, rate)
}

// sameStore reports whether two configs name the same backup store.
func sameStore(a, b *config.Config) bool {
	sa, sb := a.Backup.Store, b.Backup.Store
	if sa == "" {
		sa = config.StoreFS
	}
	if sb == "" {
		sb = config.StoreFS
	}
	if sa != sb {
		return false
	}
	if sa == config.StoreFS {
		pa, err1 := filepath.Abs(a.Backup.DataDir)
		pb, err2 := filepath.Abs(b.Backup.DataDir)
		if err1 == nil && err2 == nil && filepath.Clean(pa) == filepath.Clean(pb) {
			return true
		}
		// The same directory by another name: a symlink, a bind mount.
		fa, err1 := os.Stat(a.Backup.DataDir)
		fb, err2 := os.Stat(b.Backup.DataDir)
		return err1 == nil && err2 == nil && os.SameFile(fa, fb)
	}
	x, y := a.Backup.S3, b.Backup.S3
	return x.Endpoint == y.Endpoint && x.CommitBucket == y.CommitBucket && x.FSBucket == y.FSBucket && x.BlockBucket == y.BlockBucket
}
