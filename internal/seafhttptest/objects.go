package seafhttptest

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// emptyID is the id of an empty file or directory: never stored.
const emptyID = "0000000000000000000000000000000000000000"

// Object kinds, as directory names under <dataDir>/storage.
const (
	kindCommits = "commits"
	kindFS      = "fs"
	kindBlocks  = "blocks"
)

// isObjectID is the file server's IsObjectIDValid: exactly 40 lowercase hex
// digits.
func isObjectID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') {
			continue
		}
		return false
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// isValidUUID is the file server's IsValidUUID, which is uuid.Parse of
// github.com/google/uuid v1.1.1 (the version its go.mod pins). That parser
// is lax: it accepts upper-case hex, the 32-digit form without hyphens, a
// "urn:uuid:" prefix (any case), and any 38-character string whose
// characters 1..36 form a UUID (the braces of "{...}" are not checked).
func isValidUUID(s string) bool {
	switch len(s) {
	case 36:
	case 36 + 9:
		if strings.ToLower(s[:9]) != "urn:uuid:" {
			return false
		}
		s = s[9:]
	case 36 + 2:
		s = s[1:]
	case 32:
		for i := 0; i < 32; i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true
	default:
		return false
	}
	if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	for _, x := range [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34} {
		if !isHex(s[x]) || !isHex(s[x+1]) {
			return false
		}
	}
	return true
}

// objPath is where the filesystem backend keeps an object
// (fileserver/objstore/backend_fs.go joins with path.Join, so an empty store
// id simply drops out of the path, as there).
func (s *Server) objPath(kind, store, id string) string {
	return path.Join(s.dataDir, "storage", kind, store, id[:2], id[2:])
}

// readObject returns the stored bytes of an object.
func (s *Server) readObject(kind, store, id string) ([]byte, error) {
	return os.ReadFile(s.objPath(kind, store, id))
}

// objectExists is the backend's exists(): false only when stat says the
// file does not exist; any other stat error counts as "exists".
func (s *Server) objectExists(kind, store, id string) bool {
	_, err := os.Stat(s.objPath(kind, store, id))
	if err != nil && os.IsNotExist(err) {
		return false
	}
	return true
}

// objectSize is the backend's stat().
func (s *Server) objectSize(kind, store, id string) (int64, error) {
	fi, err := os.Stat(s.objPath(kind, store, id))
	if err != nil {
		return -1, err
	}
	return fi.Size(), nil
}

// nullString mirrors commitmgr.String: JSON null means "not set", any JSON
// string (even "") means set.
type nullString struct {
	s     string
	valid bool
}

func (n *nullString) UnmarshalJSON(data []byte) error {
	if bytes.Equal(data, []byte("null")) {
		n.valid = false
		return nil
	}
	if err := json.Unmarshal(data, &n.s); err != nil {
		return fmt.Errorf("null: couldn't unmarshal JSON: %w", err)
	}
	n.valid = true
	return nil
}

// commit has the fields and Go types of commitmgr.Commit, so that the same
// JSON fails to parse here as there.
type commit struct {
	CommitID       string     `json:"commit_id"`
	RepoID         string     `json:"repo_id"`
	RootID         string     `json:"root_id"`
	CreatorName    string     `json:"creator_name,omitempty"`
	CreatorID      string     `json:"creator"`
	Desc           string     `json:"description"`
	Ctime          int64      `json:"ctime"`
	ParentID       nullString `json:"parent_id"`
	SecondParentID nullString `json:"second_parent_id"`
	RepoName       string     `json:"repo_name"`
	RepoDesc       string     `json:"repo_desc"`
	RepoCategory   string     `json:"repo_category"`
	DeviceName     string     `json:"device_name,omitempty"`
	ClientVersion  string     `json:"client_version,omitempty"`
	Encrypted      string     `json:"encrypted,omitempty"`
	EncVersion     int        `json:"enc_version,omitempty"`
	Magic          string     `json:"magic,omitempty"`
	RandomKey      string     `json:"key,omitempty"`
	Salt           string     `json:"salt,omitempty"`
	PwdHash        string     `json:"pwd_hash,omitempty"`
	PwdHashAlgo    string     `json:"pwd_hash_algo,omitempty"`
	PwdHashParams  string     `json:"pwd_hash_params,omitempty"`
	Version        int        `json:"version,omitempty"`
	Conflict       int        `json:"conflict,omitempty"`
	NewMerge       int        `json:"new_merge,omitempty"`
	Repaired       int        `json:"repaired,omitempty"`
}

// loadCommit is commitmgr.Load: read the commit from the library's own
// store (commits of a virtual library live under its own id), parse it and
// apply Commit.FromData's checks.
func (s *Server) loadCommit(repoID, commitID string) (*commit, error) {
	data, err := s.readObject(kindCommits, repoID, commitID)
	if err != nil {
		return nil, err
	}
	c := new(commit)
	if err := json.Unmarshal(data, c); err != nil {
		return nil, err
	}
	if !isValidUUID(c.RepoID) {
		return nil, fmt.Errorf("repo id %s is invalid", c.RepoID)
	}
	if !isObjectID(c.RootID) {
		return nil, fmt.Errorf("root id %s is invalid", c.RootID)
	}
	if len(c.CreatorID) != 40 {
		return nil, fmt.Errorf("creator id %s is invalid", c.CreatorID)
	}
	if c.ParentID.valid && !isObjectID(c.ParentID.s) {
		return nil, fmt.Errorf("parent id %s is invalid", c.ParentID.s)
	}
	if c.SecondParentID.valid && !isObjectID(c.SecondParentID.s) {
		return nil, fmt.Errorf("second parent id %s is invalid", c.SecondParentID.s)
	}
	return c, nil
}

// dirent and seafDir have the fields and types of fsmgr.SeafDirent and
// fsmgr.SeafDir.
type dirent struct {
	Mode     uint32 `json:"mode"`
	ID       string `json:"id"`
	Name     string `json:"name"`
	Mtime    int64  `json:"mtime"`
	Modifier string `json:"modifier"`
	Size     int64  `json:"size"`
}

type seafDir struct {
	Version int       `json:"version"`
	DirType int       `json:"type"`
	Entries []*dirent `json:"dirents"`
}

const (
	sIFMT  = 0o170000
	sIFDIR = 0o040000
	sIFREG = 0o100000
)

func isDir(m uint32) bool     { return m&sIFMT == sIFDIR }
func isRegular(m uint32) bool { return m&sIFMT == sIFREG }

// loadDir is fsmgr.GetSeafdir: the empty id is an empty directory without
// an object; otherwise the object must inflate to a type-3 JSON object of
// version >= 1 with a "dirents" list whose ids are all valid.
func (s *Server) loadDir(store, id string) (*seafDir, error) {
	if id == emptyID {
		return &seafDir{}, nil
	}
	raw, err := s.readObject(kindFS, store, id)
	if err != nil {
		return nil, fmt.Errorf("failed to read seafdir object from storage : %w", err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("failed to parse seafdir object %s/%s : %w", store, id, err)
	}
	b, err := io.ReadAll(zr)
	zr.Close()
	if err != nil {
		return nil, fmt.Errorf("failed to parse seafdir object %s/%s : %w", store, id, err)
	}
	d := new(seafDir)
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("failed to parse seafdir object %s/%s : %w", store, id, err)
	}
	if d.DirType != 3 {
		return nil, fmt.Errorf("object %s is not a dir", id)
	}
	if d.Version < 1 {
		return nil, fmt.Errorf("dir object %s version should be > 0, version is %d", id, d.Version)
	}
	if d.Entries == nil {
		return nil, fmt.Errorf("no dirents in dir object %s", id)
	}
	for _, e := range d.Entries {
		if e == nil || !isObjectID(e.ID) {
			return nil, fmt.Errorf("dirent in dir object %s is invalid", id)
		}
	}
	return d, nil
}

// fsIDCollector computes what fs-id-list answers, the way the file server's
// calculateSendObjectList drives diff.DiffTrees with collectFileIDs (or a
// no-op when dir-only) and collectDirIDs.
type fsIDCollector struct {
	s       *Server
	ctx     context.Context
	store   string
	dirOnly bool
	out     []string
}

// sendObjectList is calculateSendObjectList for two commits of repoID whose
// trees live in store. clientHead "" means "the client has nothing".
func (s *Server) sendObjectList(ctx context.Context, repoID, store, serverHead, clientHead string, dirOnly bool) ([]string, error) {
	master, err := s.loadCommit(repoID, serverHead)
	if err != nil {
		return nil, fmt.Errorf("failed to load server head commit %s:%s: %w", repoID, serverHead, err)
	}
	remoteRoot := emptyID
	if clientHead != "" {
		remote, err := s.loadCommit(repoID, clientHead)
		if err != nil {
			return nil, fmt.Errorf("failed to load remote head commit %s:%s: %w", repoID, clientHead, err)
		}
		remoteRoot = remote.RootID
	}
	c := &fsIDCollector{s: s, ctx: ctx, store: store, dirOnly: dirOnly}
	if remoteRoot != master.RootID && master.RootID != emptyID {
		c.out = append(c.out, master.RootID)
	}
	t0, err := s.loadDir(store, master.RootID)
	if err != nil {
		return nil, err
	}
	t1, err := s.loadDir(store, remoteRoot)
	if err != nil {
		return nil, err
	}
	if err := c.diff(t0, t1); err != nil {
		return nil, err
	}
	return c.out, nil
}

func direntSame(a, b *dirent) bool {
	return a.ID == b.ID && a.Mode == b.Mode && a.Mtime == b.Mtime
}

// diff walks two directories in step as diffTreesRecursive does: at each
// step it takes the greatest current name of either side (dirents are stored
// in descending order), skips the pair when id, mode and mtime agree, and
// otherwise reports files, then directories, recursing into directories.
func (c *fsIDCollector) diff(t0, t1 *seafDir) error {
	var ptrs [2][]*dirent
	if t0 != nil {
		ptrs[0] = t0.Entries
	}
	if t1 != nil {
		ptrs[1] = t1.Entries
	}
	var off [2]int
	for {
		first, done := "", true
		for i := 0; i < 2; i++ {
			if off[i] < len(ptrs[i]) {
				done = false
				name := ptrs[i][off[i]].Name
				if first == "" || strings.Compare(name, first) > 0 {
					first = name
				}
			}
		}
		if done {
			return nil
		}
		var d [2]*dirent
		for i := 0; i < 2; i++ {
			if off[i] < len(ptrs[i]) && ptrs[i][off[i]].Name == first {
				d[i] = ptrs[i][off[i]]
				off[i]++
			}
		}
		if d[0] != nil && d[1] != nil && direntSame(d[0], d[1]) {
			continue
		}
		if err := c.files(d); err != nil {
			return err
		}
		if err := c.dirs(d); err != nil {
			return err
		}
	}
}

func (c *fsIDCollector) files(d [2]*dirent) error {
	var f [2]*dirent
	n := 0
	for i := range d {
		if d[i] != nil && isRegular(d[i].Mode) {
			f[i] = d[i]
			n++
		}
	}
	if n == 0 || c.dirOnly {
		return nil
	}
	if err := c.ctx.Err(); err != nil {
		return context.Canceled
	}
	if f[0] != nil && (f[1] == nil || f[0].ID != f[1].ID) && f[0].ID != emptyID {
		c.out = append(c.out, f[0].ID)
	}
	return nil
}

func (c *fsIDCollector) dirs(d [2]*dirent) error {
	var dd [2]*dirent
	n := 0
	for i := range d {
		if d[i] != nil && isDir(d[i].Mode) {
			dd[i] = d[i]
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := c.ctx.Err(); err != nil {
		return fmt.Errorf("failed to call dir callback: %w", context.Canceled)
	}
	if dd[0] != nil && (dd[1] == nil || dd[0].ID != dd[1].ID) && dd[0].ID != emptyID {
		c.out = append(c.out, dd[0].ID)
	}
	// collectDirIDs never stops the recursion.
	var sub [2]*seafDir
	for i := range dd {
		if dd[i] == nil {
			continue
		}
		sd, err := c.s.loadDir(c.store, dd[i].ID)
		if err != nil {
			return fmt.Errorf("Failed to find dir %s:%s: %w", c.store, dd[i].ID, err)
		}
		sub[i] = sd
	}
	return c.diff(sub[0], sub[1])
}
