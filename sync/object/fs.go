package object

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
)

// MaxFSObjectSize bounds the inflated size of one fs object. A dir of 100 000 entries is
// about 20 MB of JSON; 64 MiB leaves room while stopping a zlib bomb.
const MaxFSObjectSize = 64 << 20

// Seafile's fs object types.
const (
	TypeFile = 1
	TypeDir  = 3
)

const (
	modeTypeMask = 0o170000
	modeDir      = 0o040000
	modeRegular  = 0o100000
)

// FS is a decoded fs object: a dir (Dirents) or a file (BlockIDs, Size).
type FS struct {
	ID       string
	Type     int
	Dirents  []Dirent // dir only
	BlockIDs []string // file only
	Size     int64    // file only
}

// IsDir reports whether the object is a directory.
func (f *FS) IsDir() bool { return f.Type == TypeDir }

// Dirent is one entry of a dir object.
type Dirent struct {
	ID       string `json:"id"`
	Mode     uint32 `json:"mode"`
	Modifier string `json:"modifier"`
	Mtime    int64  `json:"mtime"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
}

// IsDir reports whether the entry is a subdirectory (S_ISDIR of its mode).
func (d *Dirent) IsDir() bool { return d.Mode&modeTypeMask == modeDir }

// IsFile reports whether the entry is a regular file (S_ISREG of its mode).
func (d *Dirent) IsFile() bool { return d.Mode&modeTypeMask == modeRegular }

type fsJSON struct {
	Type     *int     `json:"type"`
	Version  *int     `json:"version"`
	Dirents  []Dirent `json:"dirents"`
	BlockIDs []string `json:"block_ids"`
	Size     *int64   `json:"size"`
}

// Inflate decompresses a zlib stream, refusing to produce more than limit bytes, so a
// zlib bomb costs at most limit bytes of memory.
func Inflate(compressed []byte, limit int64) ([]byte, error) {
	var out []byte
	err := inflate(compressed, limit, func(plain []byte) error {
		out = bytes.Clone(plain)
		return nil
	})
	return out, err
}

// inflater is a zlib reader and an output buffer kept for the next object: a fresh
// reader costs some 40 KiB of decompressor state, and a first backup inflates one fs
// object per file and dir.
type inflater struct {
	src bytes.Reader
	zr  io.ReadCloser // a zlib.Resetter
	lim io.LimitedReader
	out bytes.Buffer
}

var inflaters = sync.Pool{New: func() any { return new(inflater) }}

// keepInflated is the largest output buffer put back in the pool: a rare huge dir must
// not pin its size in memory for the rest of the run.
const keepInflated = 1 << 20

// inflate decompresses compressed (at most limit bytes) into a pooled buffer and calls
// fn with it; plain is valid only during fn.
func inflate(compressed []byte, limit int64, fn func(plain []byte) error) error {
	z := inflaters.Get().(*inflater)
	defer func() {
		if z.out.Cap() <= keepInflated {
			inflaters.Put(z)
		}
	}()
	z.src.Reset(compressed)
	var err error
	if z.zr == nil {
		z.zr, err = zlib.NewReader(&z.src)
	} else {
		err = z.zr.(zlib.Resetter).Reset(&z.src, nil)
	}
	if err != nil {
		z.zr = nil // a failed Reset leaves it unusable
		return fmt.Errorf("%w: not a zlib stream: %v", ErrInvalid, err)
	}
	z.lim = io.LimitedReader{R: z.zr, N: limit + 1}
	z.out.Reset()
	if _, err := z.out.ReadFrom(&z.lim); err != nil {
		return fmt.Errorf("%w: broken zlib stream: %v", ErrInvalid, err)
	}
	if int64(z.out.Len()) > limit {
		return fmt.Errorf("%w: inflates to more than %d bytes", ErrInvalid, limit)
	}
	// zlib reads a bytes.Reader to the stream's end exactly: bytes after it are no
	// part of the object its id names, and Seafile never writes them.
	if n := z.src.Len(); n > 0 {
		return fmt.Errorf("%w: %d bytes after the end of its zlib stream", ErrInvalid, n)
	}
	return fn(z.out.Bytes())
}

// ParseFS checks that compressed is the fs object id (SHA-1 of its inflated bytes) and
// decodes it. The caller stores compressed as it is.
func ParseFS(id string, compressed []byte) (*FS, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	if id == EmptyID {
		return nil, fmt.Errorf("%w: the empty id %s is never a stored fs object", ErrInvalid, id)
	}
	want, _ := decodeID(id)
	// The inflated JSON is needed only to check the id and decode it: json.Unmarshal
	// copies what it keeps, so the buffer goes back to the pool.
	var j fsJSON
	var bad error
	err := inflate(compressed, MaxFSObjectSize, func(plain []byte) error {
		if sum := sha1.Sum(plain); sum != want {
			bad = fmt.Errorf("%w: fs object %s: content hashes to %s", ErrInvalid, id, hex.EncodeToString(sum[:]))
		} else if err := json.Unmarshal(plain, &j); err != nil {
			bad = fmt.Errorf("%w: fs object %s is not valid JSON: %v", ErrInvalid, id, err)
		} else if k := fsCaseVariantKey(plain); k != "" {
			bad = fmt.Errorf("%w: fs object %s has a key %q that differs from one of its fields only in case", ErrInvalid, id, truncate(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fs object %s: %w", id, err)
	}
	if bad != nil {
		return nil, bad
	}
	if j.Version == nil {
		return nil, fmt.Errorf("%w: fs object %s has no version", ErrInvalid, id)
	}
	if *j.Version < 1 {
		return nil, fmt.Errorf("fs object %s: %w", id, ErrVersion0)
	}
	if j.Type == nil {
		return nil, fmt.Errorf("%w: fs object %s has no type", ErrInvalid, id)
	}
	f := &FS{ID: id, Type: *j.Type}
	switch f.Type {
	case TypeDir:
		if err := checkDirents(j.Dirents); err != nil {
			return nil, fmt.Errorf("%w: dir %s: %v", ErrInvalid, id, err)
		}
		f.Dirents = j.Dirents
	case TypeFile:
		if j.Size == nil || *j.Size < 0 {
			return nil, fmt.Errorf("%w: file %s has a missing or negative size", ErrInvalid, id)
		}
		for _, b := range j.BlockIDs {
			if !ValidID(b) || b == EmptyID {
				return nil, fmt.Errorf("%w: file %s lists a bad block id %q", ErrInvalid, id, truncate(b))
			}
		}
		if *j.Size > 0 && len(j.BlockIDs) == 0 {
			return nil, fmt.Errorf("%w: file %s has size %d but no blocks", ErrInvalid, id, *j.Size)
		}
		f.BlockIDs = j.BlockIDs
		f.Size = *j.Size
	default:
		return nil, fmt.Errorf("%w: fs object %s has unknown type %d", ErrInvalid, id, f.Type)
	}
	return f, nil
}

// The keys of an fs object and of a dir's entries.
var fsKeys, direntKeys = jsonKeys[fsJSON](), jsonKeys[Dirent]()

// fsCaseVariantKey is caseVariantKey for an fs object (plain, its inflated JSON, valid)
// and its entries: an entry with "id" and "ID", or a file with "block_ids" and
// "bloc\u212a_ids" (a Kelvin sign), would send seafbak after other objects than those
// Seafile reads, and the backup would lack them.
func fsCaseVariantKey(plain []byte) string {
	if !foldableKey(plain) {
		return ""
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(plain, &top) != nil {
		return ""
	}
	if k := variantOf(top, fsKeys); k != "" {
		return k
	}
	var dirents []map[string]json.RawMessage
	if json.Unmarshal(top["dirents"], &dirents) != nil {
		return "" // not objects: the decode into fsJSON has refused it already
	}
	for _, d := range dirents {
		if k := variantOf(d, direntKeys); k != "" {
			return k
		}
	}
	return ""
}

func checkDirents(ds []Dirent) error {
	seen := make(map[string]struct{}, len(ds))
	for i := range ds {
		d := &ds[i]
		if err := CheckName(d.Name); err != nil {
			return err
		}
		if _, dup := seen[d.Name]; dup {
			return fmt.Errorf("entry %q appears twice", d.Name)
		}
		seen[d.Name] = struct{}{}
		if !ValidID(d.ID) {
			return fmt.Errorf("entry %q has a bad id %q", d.Name, truncate(d.ID))
		}
		if !d.IsDir() && !d.IsFile() {
			return fmt.Errorf("entry %q has mode %o, neither dir nor regular file", d.Name, d.Mode)
		}
		if d.Size < 0 {
			return fmt.Errorf("entry %q has negative size %d", d.Name, d.Size)
		}
	}
	return nil
}

// CheckName refuses entry names that could escape a directory when a path is built from
// them. Seafile itself never writes such names, so one means a broken or hostile store.
func CheckName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("entry name %q is not allowed", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("entry name %q contains '/' or NUL", truncate(name))
	}
	return nil
}

// BlockHasher verifies a block while it streams: write the bytes through it, then Check.
// A copier reuses one for block after block with Reset.
type BlockHasher struct {
	id   string
	h    hash.Hash
	n    int64
	want [sha1.Size]byte
	sum  [sha1.Size]byte
	ok   bool // id decoded into want
}

// NewBlockHasher starts verifying the block id.
func NewBlockHasher(id string) *BlockHasher {
	b := &BlockHasher{h: sha1.New()}
	b.Reset(id)
	return b
}

// Reset starts verifying the block id, forgetting what was written before.
func (b *BlockHasher) Reset(id string) {
	b.id, b.n = id, 0
	b.h.Reset()
	b.want, b.ok = decodeID(id)
}

func (b *BlockHasher) Write(p []byte) (int, error) {
	b.n += int64(len(p))
	return b.h.Write(p)
}

// Size is the number of bytes seen so far.
func (b *BlockHasher) Size() int64 { return b.n }

// Check reports whether the bytes seen hash to the block id.
func (b *BlockHasher) Check() error {
	b.h.Sum(b.sum[:0])
	if !b.ok || b.sum != b.want {
		return fmt.Errorf("%w: block %s: content (%d bytes) hashes to %s", ErrInvalid, b.id, b.n, hex.EncodeToString(b.sum[:]))
	}
	return nil
}

// decodeID is the binary form of a lowercase hex id; ok is false for anything else.
func decodeID(id string) (sum [sha1.Size]byte, ok bool) {
	if !ValidID(id) {
		return sum, false
	}
	nibble := func(c byte) byte {
		if c <= '9' {
			return c - '0'
		}
		return c - 'a' + 10
	}
	for i := range sum {
		sum[i] = nibble(id[2*i])<<4 | nibble(id[2*i+1])
	}
	return sum, true
}

// IsInvalid reports whether err says an object failed validation (as opposed to I/O).
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }
