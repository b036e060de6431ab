package dump

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/go-sql-driver/mysql"
)

// Verify checks every file of the set against its manifest: size, SHA-256, and that it
// decompresses to a whole dump (closing comment present, no database switch, no live
// table in the seafile dump).
func (s Set) Verify() error {
	_, err := s.VerifyCollations()
	return err
}

// VerifyCollations is Verify, also listing (sorted, lower case) the collations the
// set's tables are created with: a server that lacks one cannot load the set, and a
// failover should know that before it loads anything.
func (s Set) VerifyCollations() ([]string, error) {
	all := map[string]bool{}
	for _, role := range s.Roles() {
		f, err := os.Open(s.Path(role))
		if err != nil {
			return nil, fmt.Errorf("dump: set %s: %w", s.Name, err)
		}
		collations, err := checkFile(f, role, s.Manifest.Files[role])
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("dump: set %s: %w", s.Name, err)
		}
		for c := range collations {
			all[c] = true
		}
	}
	return slices.Sorted(maps.Keys(all)), nil
}

// checkFile reads r (at its start) once: its size and SHA-256 must be the manifest's and
// its SQL must pass the filter Load uses. It returns the collations the SQL names.
func checkFile(r io.Reader, role Role, want File) (map[string]bool, error) {
	h := sha256.New()
	cr := &countReader{r: r}
	zr, err := gzip.NewReader(bufio.NewReaderSize(io.TeeReader(cr, h), 256<<10))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", want.Name, err)
	}
	filt := newSQLFilter(io.Discard, protected(role))
	_, err = io.Copy(filt, zr)
	if err == nil {
		err = filt.Close()
	}
	// Hash whatever follows the gzip stream too, so the sum covers the whole file.
	if _, cerr := io.Copy(io.Discard, io.TeeReader(cr, h)); err == nil {
		err = cerr
	}
	if cr.n != want.Size {
		return nil, fmt.Errorf("%s is %d bytes, the manifest says %d", want.Name, cr.n, want.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return nil, fmt.Errorf("%s has SHA-256 %s, the manifest says %s", want.Name, got, want.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", want.Name, err)
	}
	return filt.collations, nil
}

func protected(role Role) []string {
	if role == Seafile {
		return LiveTables
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Load loads role's dump of set into the target database, which must exist (any name:
// the dump has no CREATE DATABASE or USE). Each table of the dump is dropped and
// recreated with the dump's rows; tables of the target that are not in the dump stay
// as they are, so for the seafile role Repo, Branch and RepoHead are left untouched
// (and are not created if the target lacks them).
//
// The file is checked first (Verify's checks, on the same open file), then piped,
// decompressed, into the real mariadb (or mysql) client in --binary-mode, which runs no
// client commands (\! and the like) that a hostile dump could carry. Credentials reach
// it through a pipe (see run), never a file. A load that fails halfway leaves
// the tables loaded so far: a dump is not one transaction.
func Load(ctx context.Context, set Set, role Role, target *mysql.Config) error {
	if target == nil || target.DBName == "" {
		return errors.New("dump: load: no target database")
	}
	want, ok := set.Manifest.Files[role]
	if !ok {
		return fmt.Errorf("dump: set %s has no %s dump", set.Name, role)
	}
	if want.Name != fileName(role) {
		return fmt.Errorf("dump: set %s: bad file name %q for %s", set.Name, want.Name, role)
	}
	errf := func(err error) error {
		return fmt.Errorf("dump: load %s of set %s into %s: %w", role, set.Name, target.DBName, err)
	}
	// One open file for the check and the load: a prune of the set meanwhile cannot
	// swap what is loaded for something unchecked.
	f, err := os.Open(filepath.Join(set.Dir, want.Name))
	if err != nil {
		return errf(err)
	}
	defer f.Close()
	if _, err := checkFile(f, role, want); err != nil {
		return errf(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return errf(err)
	}

	client, err := findTool(ctx, "", "mariadb", "mysql")
	if err != nil {
		return errf(err)
	}
	defaults, err := defaultsText(target, client)
	if err != nil {
		return errf(err)
	}
	args := []string{
		"--binary-mode", // no client commands but DELIMITER; NUL and \r kept as they are
		"--default-character-set=utf8mb4",
		"--max-allowed-packet=1G",
		"--", target.DBName,
	}

	// The producer decompresses into the client's stdin. If it fails, it kills the
	// client (ctx) rather than closing stdin, so the client never runs a cut statement.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pr, pw := io.Pipe()
	produced := make(chan error, 1)
	go func() {
		err := func() error {
			zr, err := gzip.NewReader(bufio.NewReaderSize(f, 256<<10))
			if err != nil {
				return err
			}
			filt := newSQLFilter(pw, protected(role))
			if _, err := io.Copy(filt, zr); err != nil {
				return err
			}
			return filt.Close()
		}()
		switch {
		case err == nil:
			pw.Close()
		case !errors.Is(err, errClientExited):
			cancel(err)
		}
		produced <- err
	}()
	out := &capBuffer{max: 4 << 10}
	_, runErr := run(runCtx, client.path, defaults, args, pr, out, target.Passwd)
	pr.CloseWithError(errClientExited) // unblocks the producer if the client left early
	prodErr := <-produced
	switch {
	case ctx.Err() != nil:
		return errf(context.Cause(ctx))
	case runErr != nil && prodErr != nil && !errors.Is(prodErr, errClientExited):
		return errf(prodErr) // the producer failed and killed the client
	case runErr != nil:
		return errf(runErr)
	case prodErr != nil:
		return errf(prodErr)
	}
	return nil
}

var errClientExited = errors.New("the client exited before reading the whole dump")
