package seafgen

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Entry is one file or directory of a commit's tree, as a backup restored
// from the library should contain it.
type Entry struct {
	// Path is relative to the library root; a directory's ends with "/".
	Path string
	Dir  bool
	// Size is the file's plaintext size; 0 for directories.
	Size int64
	// SHA256 is the lowercase hex SHA-256 of the plaintext content; "" for
	// directories.
	SHA256 string
}

// Tree returns the files and directories of a commit, sorted by Path,
// every directory (empty or not) included. It reads the objects back from
// disk, so it fails for a commit whose tree was truncated; file hashes come
// from a cache filled when the files were written (or from the blocks,
// decrypted if need be).
func (l *Library) Tree(commitID string) ([]Entry, error) {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	m, err := l.metaOf(commitID)
	if err != nil {
		return nil, err
	}
	var out []Entry
	if err := l.walkTree(m.root, "", &out); err != nil {
		return nil, fmt.Errorf("seafgen: tree of %s: %w", commitID, err)
	}
	sortEntries(out)
	return out, nil
}

func (l *Library) walkTree(dirID, prefix string, out *[]Entry) error {
	ds, err := l.g.readDir(l.StoreID, dirID)
	if err != nil {
		return err
	}
	for _, d := range ds {
		p := prefix + d.Name
		if d.IsDir() {
			*out = append(*out, Entry{Path: p + "/", Dir: true})
			if err := l.walkTree(d.ID, p+"/", out); err != nil {
				return err
			}
			continue
		}
		sum, err := l.fileSHA256(d.ID, d.Size)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		*out = append(*out, Entry{Path: p, Size: d.Size, SHA256: sum})
	}
	return nil
}

// fileSHA256 returns the SHA-256 of a file's plaintext, checking that its
// blocks add up to size.
func (l *Library) fileSHA256(id string, size int64) (string, error) {
	if id == EmptyID {
		if size != 0 {
			return "", fmt.Errorf("empty file id with size %d", size)
		}
		return emptySHA256, nil
	}
	if s, ok := l.st.sha[id]; ok {
		return s, nil
	}
	o, err := l.g.readFS(l.StoreID, id)
	if err != nil {
		return "", err
	}
	if o.Type != fsTypeFile {
		return "", fmt.Errorf("fs object %s is not a file", id)
	}
	h := sha256.New()
	var n int64
	for _, bid := range o.BlockIDs {
		data, err := os.ReadFile(l.g.objPath(kindBlocks, l.StoreID, bid))
		if err != nil {
			return "", err
		}
		if l.st.crypt != nil {
			if data, err = l.st.crypt.decrypt(data); err != nil {
				return "", fmt.Errorf("block %s: %w", bid, err)
			}
		}
		h.Write(data)
		n += int64(len(data))
	}
	if n != o.Size || n != size {
		return "", fmt.Errorf("file %s: blocks hold %d bytes, object says %d, dirent %d", id, n, o.Size, size)
	}
	s := hex.EncodeToString(h.Sum(nil))
	l.st.sha[id] = s
	return s, nil
}

func sortEntries(e []Entry) {
	slices.SortFunc(e, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
}

// FormatTree renders entries in the format of testdata/real-library/trees/*.txt,
// sorted by path: "<sha256>  <size>  <path>\n" for a file and
// "dir  -  <path>/\n" for a directory. No entries give "".
func FormatTree(entries []Entry) string {
	e := slices.Clone(entries)
	sortEntries(e)
	var b strings.Builder
	for _, x := range e {
		if x.Dir {
			b.WriteString("dir  -  ")
			b.WriteString(x.Path)
			if !strings.HasSuffix(x.Path, "/") {
				b.WriteByte('/')
			}
		} else {
			b.WriteString(x.SHA256)
			b.WriteString("  ")
			b.WriteString(strconv.FormatInt(x.Size, 10))
			b.WriteString("  ")
			b.WriteString(x.Path)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseTree parses the output of FormatTree (or a trees/*.txt file of the
// fixture), so expected trees can be compared as values.
func ParseTree(text string) ([]Entry, error) {
	var out []Entry
	for i, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "  ", 3)
		if len(f) != 3 || f[2] == "" {
			return nil, fmt.Errorf("seafgen: tree line %d: %q", i+1, line)
		}
		if f[0] == "dir" && f[1] == "-" {
			if !strings.HasSuffix(f[2], "/") {
				return nil, fmt.Errorf("seafgen: tree line %d: directory path without '/': %q", i+1, line)
			}
			out = append(out, Entry{Path: f[2], Dir: true})
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 || len(f[0]) != 64 {
			return nil, fmt.Errorf("seafgen: tree line %d: %q", i+1, line)
		}
		if _, err := hex.DecodeString(f[0]); err != nil {
			return nil, fmt.Errorf("seafgen: tree line %d: %q", i+1, line)
		}
		out = append(out, Entry{Path: f[2], Size: size, SHA256: f[0]})
	}
	return out, nil
}
