package seafgen

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// EmptyID is the id of an empty file and of an empty directory. Seafile
// never stores an object under it, so the generator must not either.
const EmptyID = "0000000000000000000000000000000000000000"

// Dirent modes as Seafile writes them; exported so tests can build or check
// dirents without repeating the magic numbers.
const (
	// ModeFile is S_IFREG|0644, the mode of every file dirent.
	ModeFile uint32 = 0o100644 // 33188
	// ModeDir is S_IFDIR, the mode of every directory dirent.
	ModeDir uint32 = 0o040000 // 16384
)

// fs object types ("type" field) as defined by Seafile.
const (
	fsTypeFile = 1
	fsTypeDir  = 3
)

// Dirent is one entry of a directory object. It is exported so tests of other
// packages can build dir objects in Seafile's exact format with EncodeDir.
type Dirent struct {
	ID       string // fs id of the file or sub-directory (EmptyID when empty)
	Mode     uint32 // ModeFile or ModeDir (any S_IFREG / S_IFDIR mode is accepted)
	Modifier string // files only: the user who last changed the file
	Mtime    int64  // unix seconds
	Name     string // one path component, raw UTF-8
	Size     int64  // files only: content size in bytes (plaintext size)
}

// IsDir reports whether the dirent is a directory (S_ISDIR).
func (d Dirent) IsDir() bool { return d.Mode&0o170000 == 0o040000 }

// isRegular mirrors the Go file server's IsRegular (S_ISREG): only regular
// files get "modifier" and "size" keys.
func (d Dirent) isRegular() bool { return d.Mode&0o170000 == 0o100000 }

// ObjectID returns the lowercase hex SHA-1 of data. For fs objects it must be
// given the UNCOMPRESSED JSON; for blocks the stored bytes.
func ObjectID(data []byte) string {
	sum := sha1.Sum(data)
	return hex.EncodeToString(sum[:])
}

// EncodeDir returns the uncompressed JSON of a directory object exactly as
// Seafile's C writers and the Go file server produce it: keys sorted, ", " and
// ": " separators, dirents sorted by name in descending byte order, names raw
// UTF-8. entries is not modified. An empty entries list is an error: an empty
// directory has the id EmptyID and no object.
func EncodeDir(entries []Dirent) ([]byte, error) {
	if len(entries) == 0 {
		return nil, errors.New("seafgen: an empty directory has no object (its id is EmptyID)")
	}
	sorted := slices.Clone(entries)
	sortDirents(sorted)
	var buf bytes.Buffer
	buf.Grow(64 + 160*len(sorted))
	buf.WriteString(`{"dirents": [`)
	for i, d := range sorted {
		if i > 0 {
			if d.Name == sorted[i-1].Name {
				return nil, fmt.Errorf("seafgen: duplicate dirent name %q", d.Name)
			}
			buf.WriteString(", ")
		}
		if err := checkName(d.Name); err != nil {
			return nil, err
		}
		if !isObjectID(d.ID) {
			return nil, fmt.Errorf("seafgen: dirent %q: bad id %q", d.Name, d.ID)
		}
		buf.WriteString(`{"id": `)
		writeGoFSString(&buf, d.ID)
		buf.WriteString(`, "mode": `)
		buf.WriteString(strconv.FormatUint(uint64(d.Mode), 10))
		if d.isRegular() {
			buf.WriteString(`, "modifier": `)
			writeGoFSString(&buf, d.Modifier)
		}
		buf.WriteString(`, "mtime": `)
		buf.WriteString(strconv.FormatInt(d.Mtime, 10))
		buf.WriteString(`, "name": `)
		writeGoFSString(&buf, d.Name)
		if d.isRegular() {
			buf.WriteString(`, "size": `)
			buf.WriteString(strconv.FormatInt(d.Size, 10))
		}
		buf.WriteByte('}')
	}
	buf.WriteString(`], "type": 3, "version": 1}`)
	return buf.Bytes(), nil
}

// EncodeFile returns the uncompressed JSON of a file object in Seafile's
// exact format. An empty block list is an error: an empty file has the id
// EmptyID and no object.
func EncodeFile(blockIDs []string, size int64) ([]byte, error) {
	if len(blockIDs) == 0 {
		return nil, errors.New("seafgen: an empty file has no object (its id is EmptyID)")
	}
	var buf bytes.Buffer
	buf.Grow(64 + 44*len(blockIDs))
	buf.WriteString(`{"block_ids": [`)
	for i, id := range blockIDs {
		if !isObjectID(id) || id == EmptyID {
			return nil, fmt.Errorf("seafgen: bad block id %q", id)
		}
		if i > 0 {
			buf.WriteString(", ")
		}
		buf.WriteByte('"')
		buf.WriteString(id)
		buf.WriteByte('"')
	}
	buf.WriteString(`], "size": `)
	buf.WriteString(strconv.FormatInt(size, 10))
	buf.WriteString(`, "type": 1, "version": 1}`)
	return buf.Bytes(), nil
}

// sortDirents orders dirents as Seafile does: by name, descending byte order.
func sortDirents(d []Dirent) {
	slices.SortFunc(d, func(a, b Dirent) int { return strings.Compare(b.Name, a.Name) })
}

// writeGoFSString writes s as a JSON string the way the Go file server's
// fs writer does (json-iterator with HTML escaping off): '"' and '\\'
// backslash-escaped, \n \r \t short, other control characters as \u00xx
// (lowercase hex), everything else (including '/', '<', '>', '&', non-ASCII
// and U+2028/U+2029) raw. Callers guarantee valid UTF-8.
func writeGoFSString(buf *bytes.Buffer, s string) { writeJSONString(buf, s, false) }

// writeJanssonString writes s as jansson's json_dumps(obj, 0) does: the same,
// but \b and \f short too, and other control characters with UPPERCASE hex.
// The two writers give one tree two ids, which is why objects are never
// re-encoded.
func writeJanssonString(buf *bytes.Buffer, s string) { writeJSONString(buf, s, true) }

func writeJSONString(buf *bytes.Buffer, s string, jansson bool) {
	hexdigits := "0123456789abcdef"
	if jansson {
		hexdigits = "0123456789ABCDEF"
	}
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		buf.WriteString(s[start:i])
		switch {
		case b == '"' || b == '\\':
			buf.WriteByte('\\')
			buf.WriteByte(b)
		case b == '\n':
			buf.WriteString(`\n`)
		case b == '\r':
			buf.WriteString(`\r`)
		case b == '\t':
			buf.WriteString(`\t`)
		case jansson && b == '\b':
			buf.WriteString(`\b`)
		case jansson && b == '\f':
			buf.WriteString(`\f`)
		default:
			buf.WriteString(`\u00`)
			buf.WriteByte(hexdigits[b>>4])
			buf.WriteByte(hexdigits[b&0xf])
		}
		start = i + 1
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}

// CommitIDWithNUL computes a commit id as seaf-server and the desktop client
// (C, common/commit-mgr.c) do: SHA-1 over root id, creator id, creator name
// and description each followed by its NUL terminator, then ctime as 8-byte
// big-endian. Commits written by clients and by seaf-server use it.
func CommitIDWithNUL(rootID, creatorID, creatorName, desc string, ctime int64) string {
	return commitID(rootID, creatorID, creatorName, desc, ctime, true)
}

// CommitIDNoNUL computes a commit id as the Go file server does
// (fileserver/commitmgr): the same fields WITHOUT NUL terminators. Merge
// commits made by the file server use it.
func CommitIDNoNUL(rootID, creatorID, creatorName, desc string, ctime int64) string {
	return commitID(rootID, creatorID, creatorName, desc, ctime, false)
}

func commitID(rootID, creatorID, creatorName, desc string, ctime int64, nul bool) string {
	h := sha1.New()
	for _, s := range []string{rootID, creatorID, creatorName, desc} {
		h.Write([]byte(s))
		if nul {
			h.Write([]byte{0})
		}
	}
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(ctime))
	h.Write(t[:])
	return hex.EncodeToString(h.Sum(nil))
}

// goCommit mirrors fileserver/commitmgr.Commit field for field and tag for
// tag: marshalling it with encoding/json reproduces the file server's
// re-encoding of commits byte for byte. parent_id and second_parent_id are
// pointers because the server's String type marshals an unset value as null.
// Version is a pointer only so that CommitVersion0 can write "version":0
// explicitly; the server itself omits a zero version.
type goCommit struct {
	CommitID       string  `json:"commit_id"`
	RepoID         string  `json:"repo_id"`
	RootID         string  `json:"root_id"`
	CreatorName    string  `json:"creator_name,omitempty"`
	CreatorID      string  `json:"creator"`
	Desc           string  `json:"description"`
	Ctime          int64   `json:"ctime"`
	ParentID       *string `json:"parent_id"`
	SecondParentID *string `json:"second_parent_id"`
	RepoName       string  `json:"repo_name"`
	RepoDesc       string  `json:"repo_desc"`
	RepoCategory   string  `json:"repo_category"`
	DeviceName     string  `json:"device_name,omitempty"`
	ClientVersion  string  `json:"client_version,omitempty"`
	Encrypted      string  `json:"encrypted,omitempty"`
	EncVersion     int     `json:"enc_version,omitempty"`
	Magic          string  `json:"magic,omitempty"`
	RandomKey      string  `json:"key,omitempty"`
	Salt           string  `json:"salt,omitempty"`
	PwdHash        string  `json:"pwd_hash,omitempty"`
	PwdHashAlgo    string  `json:"pwd_hash_algo,omitempty"`
	PwdHashParams  string  `json:"pwd_hash_params,omitempty"`
	Version        *int    `json:"version,omitempty"`
	Conflict       int     `json:"conflict,omitempty"`
	NewMerge       int     `json:"new_merge,omitempty"`
	Repaired       int     `json:"repaired,omitempty"`
}

func (c *goCommit) encode() ([]byte, error) { return json.Marshal(c) }

// cCommit holds the fields seaf-server writes for a commit it creates itself
// (library creation, virtual library creation).
type cCommit struct {
	CommitID, RootID, RepoID, CreatorName, CreatorID, Desc string
	Ctime                                                  int64
	RepoName, RepoDesc                                     string
	Encrypted                                              bool
	EncVersion                                             int
	Magic, RandomKey                                       string
	Version                                                int
}

// encode reproduces seaf-server's commit_to_json_object followed by
// jansson's json_dumps(obj, 0): insertion order, ", " and ": " separators.
// Parents and repo_category are always null for the commits seaf-server
// creates here; no_local_history is 1 as for every library it creates.
func (c *cCommit) encode() []byte {
	var b bytes.Buffer
	str := func(key, val string) {
		if b.Len() > 1 {
			b.WriteString(", ")
		}
		writeJanssonString(&b, key)
		b.WriteString(": ")
		writeJanssonString(&b, val)
	}
	raw := func(key, val string) {
		if b.Len() > 1 {
			b.WriteString(", ")
		}
		writeJanssonString(&b, key)
		b.WriteString(": ")
		b.WriteString(val)
	}
	b.WriteByte('{')
	str("commit_id", c.CommitID)
	str("root_id", c.RootID)
	str("repo_id", c.RepoID)
	str("creator_name", c.CreatorName)
	str("creator", c.CreatorID)
	str("description", c.Desc)
	raw("ctime", strconv.FormatInt(c.Ctime, 10))
	raw("parent_id", "null")
	raw("second_parent_id", "null")
	str("repo_name", c.RepoName)
	str("repo_desc", c.RepoDesc)
	raw("repo_category", "null")
	if c.Encrypted {
		str("encrypted", "true")
		raw("enc_version", strconv.Itoa(c.EncVersion))
		if c.EncVersion >= 1 {
			str("magic", c.Magic)
		}
		if c.EncVersion >= 2 {
			str("key", c.RandomKey)
		}
	}
	raw("no_local_history", "1")
	if c.Version != 0 {
		raw("version", strconv.Itoa(c.Version))
	}
	b.WriteByte('}')
	return b.Bytes()
}

// parsedCommit is what the generator needs back from a stored commit.
type parsedCommit struct {
	CommitID       string  `json:"commit_id"`
	RepoID         string  `json:"repo_id"`
	RootID         string  `json:"root_id"`
	Ctime          int64   `json:"ctime"`
	ParentID       *string `json:"parent_id"`
	SecondParentID *string `json:"second_parent_id"`
	CreatorName    string  `json:"creator_name"`
	RepoName       string  `json:"repo_name"`
	RepoDesc       string  `json:"repo_desc"`
	Encrypted      string  `json:"encrypted"`
	EncVersion     int     `json:"enc_version"`
	Magic          string  `json:"magic"`
	RandomKey      string  `json:"key"`
	Version        int     `json:"version"`
}

// fsObject is the decoded form of a dir or file object, used to read back
// what the generator wrote.
type fsObject struct {
	Type     int      `json:"type"`
	Version  int      `json:"version"`
	BlockIDs []string `json:"block_ids"`
	Size     int64    `json:"size"`
	Dirents  []struct {
		ID       string `json:"id"`
		Mode     uint32 `json:"mode"`
		Modifier string `json:"modifier"`
		Mtime    int64  `json:"mtime"`
		Name     string `json:"name"`
		Size     int64  `json:"size"`
	} `json:"dirents"`
}

func decodeFS(data []byte) (*fsObject, error) {
	var o fsObject
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, err
	}
	if o.Version != 1 {
		return nil, fmt.Errorf("fs object version %d, want 1", o.Version)
	}
	if o.Type != fsTypeDir && o.Type != fsTypeFile {
		return nil, fmt.Errorf("fs object type %d", o.Type)
	}
	return &o, nil
}

func (o *fsObject) dirents() []Dirent {
	out := make([]Dirent, len(o.Dirents))
	for i, d := range o.Dirents {
		out[i] = Dirent{ID: d.ID, Mode: d.Mode, Modifier: d.Modifier, Mtime: d.Mtime, Name: d.Name, Size: d.Size}
	}
	return out
}

// isObjectID reports whether s is 40 lowercase hex digits.
func isObjectID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isUUID reports whether s is a lowercase 8-4-4-4-12 hex UUID, the only form
// of library id Seafile uses.
func isUUID(s string) bool {
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
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// checkText rejects strings that are not valid UTF-8: jansson refuses them
// and encoding/json would store U+FFFD instead of the bytes that were hashed
// into the commit id.
func checkText(ss ...string) error {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return fmt.Errorf("seafgen: %q is not valid UTF-8", s)
		}
	}
	return nil
}

// checkName validates one path component.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("seafgen: invalid name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("seafgen: name %q contains '/' or NUL", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("seafgen: name %q is not valid UTF-8", name)
	}
	return nil
}
