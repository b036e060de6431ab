// Package object is Seafile's object model as seafbak needs it: ids, commits, fs objects
// (dirs and files) and blocks. Decoding validates everything that came from outside and
// keeps the raw bytes: seafbak stores what it received and never re-encodes an object,
// because Seafile's writers disagree on JSON details and a re-encoded fs object would get
// a different id.
package object

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Kind names the three object stores of a Seafile library.
type Kind string

const (
	KindCommit Kind = "commits"
	KindFS     Kind = "fs"
	KindBlock  Kind = "blocks"
)

// Valid reports whether k is one of Seafile's object kinds; store paths are built from it.
func (k Kind) Valid() bool {
	return k == KindCommit || k == KindFS || k == KindBlock
}

// Keys are the two ids a library's objects are filed under in a store: Seafile keeps
// a library's commits under the library's own id, and its fs objects and blocks under
// the store id, which for a virtual library (a sub-folder synced as a library) is its
// origin's id. Callers ask For(kind) instead of choosing one id by hand at each read
// or write, so a commit looked up under the store id, or a block under the repo id (a
// mistake that only virtual libraries would show), cannot be written.
type Keys struct {
	RepoID  string // the library's own id: its commits
	StoreID string // its fs objects and blocks (the origin's id for a virtual library)
}

// For is the id that objects of kind k are stored under.
func (k Keys) For(kind Kind) string {
	if kind == KindCommit {
		return k.RepoID
	}
	return k.StoreID
}

// EmptyID stands for an empty file or an empty dir. It is never stored nor fetched.
const EmptyID = "0000000000000000000000000000000000000000"

// MaxStoredSize bounds the stored bytes of a commit or fs object, wherever they are read
// from (the primary, the wire, the backup), so a damaged or hostile store cannot make
// seafbak buffer without limit. zlib expands incompressible data by a few bytes per
// 16 KiB, so an fs object within MaxFSObjectSize inflated is never stored this large.
// Blocks are streamed and have no bound here.
func MaxStoredSize(k Kind) int64 {
	if k == KindCommit {
		return MaxCommitSize
	}
	return MaxFSObjectSize + MaxFSObjectSize/8
}

// CheckFileSize checks that the blocks of file id, holding stored bytes in all, add up
// to the size the file records. An encrypted library's blocks are AES-CBC ciphertext,
// each 1 to 16 bytes longer than its plaintext (PKCS#7 padding).
func CheckFileSize(id string, size int64, blocks int, stored int64, encrypted bool) error {
	n := int64(blocks)
	if !encrypted && stored == size || encrypted && stored >= size+n && stored <= size+16*n {
		return nil
	}
	return fmt.Errorf("%w: file %s says %d bytes but its %d blocks hold %d", ErrInvalid, id, size, n, stored)
}

// ErrInvalid is wrapped by every validation failure, so callers can tell "the primary sent
// something wrong" from I/O errors.
var ErrInvalid = errors.New("invalid object")

// ErrVersion0 is returned for objects of version-0 libraries (Seafile before 3.0), whose
// binary object format seafbak does not read.
var ErrVersion0 = errors.New("version-0 library (created before Seafile 3.0) is not supported; upgrade it with Seafile's own tools first")

// BinaryID is an object id as its 20 bytes: how sets of millions of ids stay small
// (40-byte strings cost about 100 bytes each in a map). ok is false for an id that is
// not 40 lowercase hex digits.
func BinaryID(id string) (b [20]byte, ok bool) {
	if !ValidID(id) {
		return b, false
	}
	hex.Decode(b[:], []byte(id))
	return b, true
}

// ValidID reports whether s is a 40-char lowercase hex object id. Object paths are built
// from ids, so nothing else may pass.
func ValidID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CheckID returns an error naming what is wrong with id.
func CheckID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: bad object id %q (want 40 lowercase hex characters)", ErrInvalid, truncate(id))
	}
	return nil
}

// ValidRepoID reports whether s is a library id: a lowercase 8-4-4-4-12 hex UUID.
// Store paths are built from it, so nothing else may pass.
func ValidRepoID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// CheckRepoID returns an error naming what is wrong with id.
func CheckRepoID(id string) error {
	if !ValidRepoID(id) {
		return fmt.Errorf("%w: bad library id %q (want a lowercase UUID like 7b89d49b-5c5c-4f42-8ded-940c84a3e206)", ErrInvalid, truncate(id))
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
