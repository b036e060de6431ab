package object

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"testing"
)

// Review (wire): bytes after the end of an fs object's zlib stream are accepted; the
// caller then stores them as the object.
func TestParseFSRefusesTrailingBytes(t *testing.T) {
	plain := []byte(`{"block_ids": [], "size": 0, "type": 1, "version": 1}`)
	sum := sha1.Sum(plain)
	id := hex.EncodeToString(sum[:])
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(plain)
	zw.Close()
	padded := append(z.Bytes(), bytes.Repeat([]byte{0}, 1<<20)...)
	if _, err := ParseFS(id, padded); err == nil {
		t.Errorf("an fs object followed by %d bytes after its zlib stream parsed without error", len(padded)-z.Len())
	}
}

// Review (wire): encoding/json matches keys case-insensitively, jansson (seaf-server,
// seaf-fsck, seaf-gc) does not. A commit with both "root_id" and "ROOT_ID" names one
// tree to seafbak (the last key) and another to Seafile's C code (the exact key), so
// the backup can hold the tree the C server never reads and lack the one it does.
func TestParseCommitRefusesCaseVariantKeys(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	id := strings.Repeat("c", 40)
	raw := []byte(`{"commit_id": "` + id + `", "repo_id": "` + realRepo + `", "root_id": "` + a + `", "ROOT_ID": "` + b +
		`", "parent_id": null, "second_parent_id": null, "version": 1, "ctime": 1}`)
	c, err := ParseCommit(raw, id, realRepo)
	if err == nil && c.RootID != a {
		t.Errorf(`commit with "root_id": %s and "ROOT_ID": %s parsed with root %s; jansson reads root_id as %s`, a, b, c.RootID, a)
	}
}
