package object

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
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
