package object

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// MaxCommitSize bounds a commit object. Real commits are well under 4 KiB; the bound
// only stops a broken or hostile primary from making seafbak buffer without limit.
const MaxCommitSize = 1 << 20

// Commit is the part of a Seafile commit that the backup walks: its tree and parents.
// Raw holds the bytes as received, which are what gets stored.
type Commit struct {
	ID             string
	RepoID         string
	RootID         string
	ParentID       string // "" for the library's first commit
	SecondParentID string // set on merge commits
	CreatorName    string
	Description    string
	Ctime          int64
	RepoName       string
	Version        int
	Encrypted      bool
	Raw            []byte
}

// Parents lists the commit's parents, first parent first.
func (c *Commit) Parents() []string {
	var ps []string
	if c.ParentID != "" {
		ps = append(ps, c.ParentID)
	}
	if c.SecondParentID != "" {
		ps = append(ps, c.SecondParentID)
	}
	return ps
}

type commitJSON struct {
	CommitID       *string         `json:"commit_id"`
	RepoID         *string         `json:"repo_id"`
	RootID         *string         `json:"root_id"`
	ParentID       *string         `json:"parent_id"`
	SecondParentID *string         `json:"second_parent_id"`
	CreatorName    string          `json:"creator_name"`
	Description    string          `json:"description"`
	Ctime          int64           `json:"ctime"`
	RepoName       string          `json:"repo_name"`
	Version        *int            `json:"version"`
	Encrypted      json.RawMessage `json:"encrypted"`
}

// commitKeys are commitJSON's keys.
var commitKeys = jsonKeys[commitJSON]()

// jsonKeys lists the JSON keys of T's fields.
func jsonKeys[T any]() []string {
	t := reflect.TypeFor[T]()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return keys
}

// caseVariantKey returns a key of the commit's JSON that equals one of commitKeys but
// for case. encoding/json matches keys regardless of case (Unicode's simple folding:
// the Kelvin sign is a k, the long s an s) and takes the last; Seafile's C tools
// (jansson) match exactly: given "root_id" and "ROOT_ID", the two would read different
// trees, and the backup would hold the one Seafile does not serve.
//
// Every commit a sync, a re-check or verify reads passes here, and Seafile writes its
// keys in lower-case ASCII: the keys are decoded only when one might fold (a map of
// every commit's fields tripled the cost of parsing one).
func caseVariantKey(raw []byte) string {
	if !foldableKey(raw) {
		return ""
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal(raw, &keys) != nil {
		return ""
	}
	return variantOf(keys, commitKeys)
}

// variantOf returns a key of obj that is not one of known but equals one but for case.
func variantOf(obj map[string]json.RawMessage, known []string) string {
	for k := range obj {
		for _, want := range known {
			if k != want && strings.EqualFold(k, want) {
				return k
			}
		}
	}
	return ""
}

// foldableKey reports whether some key of the JSON raw (valid: decoded already), at
// any depth, might be a case variant of a lower-case ASCII key: it holds an ASCII
// upper-case letter, a byte past ASCII (the Kelvin sign and the long s fold onto k and
// s) or an escape (\u0053 is an S). One pass over its strings, each a key when a colon
// follows it.
func foldableKey(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '"' {
			continue
		}
		start, foldable := i+1, false
		for i = start; i < len(raw) && raw[i] != '"'; i++ {
			switch b := raw[i]; {
			case b == '\\':
				foldable = true
				i++ // the escaped byte
			case 'A' <= b && b <= 'Z', b >= 0x80:
				foldable = true
			}
		}
		if !foldable {
			continue
		}
		j := i + 1
		for j < len(raw) && (raw[j] == ' ' || raw[j] == '\t' || raw[j] == '\n' || raw[j] == '\r') {
			j++
		}
		if j < len(raw) && raw[j] == ':' {
			return true
		}
	}
	return false
}

// ParseCommit decodes and validates a commit that was asked for as wantID of library
// wantRepo. Commit ids cannot be recomputed reliably (Seafile's C and Go writers hash
// different bytes, and the stored bytes are not the hashed ones), so a commit is checked
// by what it claims to be against what was asked for.
func ParseCommit(raw []byte, wantID, wantRepo string) (*Commit, error) {
	if len(raw) > MaxCommitSize {
		return nil, fmt.Errorf("%w: commit %s is %d bytes, more than the %d allowed", ErrInvalid, wantID, len(raw), MaxCommitSize)
	}
	var j commitJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: commit %s is not valid JSON: %v", ErrInvalid, wantID, err)
	}
	// Only white space may follow, as Seafile's parsers (jansson, encoding/json's
	// Unmarshal) require: More is false before a stray '}' or ']'.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: commit %s has trailing data after its JSON", ErrInvalid, wantID)
	}
	if k := caseVariantKey(raw); k != "" {
		return nil, fmt.Errorf("%w: commit %s has a key %q that differs from one of its fields only in case", ErrInvalid, wantID, truncate(k))
	}
	c := &Commit{
		CreatorName: j.CreatorName,
		Description: j.Description,
		Ctime:       j.Ctime,
		RepoName:    j.RepoName,
		Raw:         raw,
	}
	if j.CommitID == nil || *j.CommitID != wantID {
		return nil, fmt.Errorf("%w: commit asked for as %s says it is %s", ErrInvalid, wantID, deref(j.CommitID))
	}
	c.ID = wantID
	if j.RepoID == nil || *j.RepoID != wantRepo {
		return nil, fmt.Errorf("%w: commit %s belongs to library %s, not %s", ErrInvalid, wantID, deref(j.RepoID), wantRepo)
	}
	c.RepoID = wantRepo
	if j.Version == nil {
		return nil, fmt.Errorf("%w: commit %s has no version", ErrInvalid, wantID)
	}
	if *j.Version < 1 {
		return nil, fmt.Errorf("commit %s: %w", wantID, ErrVersion0)
	}
	c.Version = *j.Version
	if j.RootID == nil || !ValidID(*j.RootID) {
		return nil, fmt.Errorf("%w: commit %s has a bad root_id %q", ErrInvalid, wantID, truncate(deref(j.RootID)))
	}
	c.RootID = *j.RootID
	for _, p := range []struct {
		field string
		v     *string
		dst   *string
	}{{"parent_id", j.ParentID, &c.ParentID}, {"second_parent_id", j.SecondParentID, &c.SecondParentID}} {
		if p.v == nil {
			continue
		}
		if !ValidID(*p.v) {
			return nil, fmt.Errorf("%w: commit %s has a bad %s %q", ErrInvalid, wantID, p.field, truncate(*p.v))
		}
		*p.dst = *p.v
	}
	if c.ParentID == "" && c.SecondParentID != "" {
		return nil, fmt.Errorf("%w: commit %s has a second parent but no first parent", ErrInvalid, wantID)
	}
	// The Go file server writes "encrypted":"true"/"false"; seaf-server writes true or 1.
	switch string(bytes.Trim(j.Encrypted, `"`)) {
	case "true", "1":
		c.Encrypted = true
	}
	return c, nil
}

func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return truncate(*s)
}
