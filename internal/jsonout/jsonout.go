// Package jsonout writes the commands' JSON documents, indented by two spaces, without
// holding a large one whole.
package jsonout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// WriteIndented writes doc as json.Encoder with SetIndent("", "  ") would, with the
// top-level field key (which doc must hold as null) given items, encoded one at a time.
// The encoder builds a whole document, then an indented copy of it: for 100 000
// libraries that was most of the memory status --json and verify --json used. A nil
// items leaves the null. A doc without key as null (a renamed or omitempty field) is an
// error rather than a document silently missing its items.
func WriteIndented[T any](w io.Writer, doc any, key string, items []T) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	head, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	slot := []byte("\n  \"" + key + "\": null")
	i := bytes.Index(head, slot)
	if i < 0 && items != nil {
		return fmt.Errorf("jsonout: the document has no top-level %q: null to write %d items into", key, len(items))
	}
	if items == nil {
		bw.Write(head)
		bw.WriteByte('\n')
		return bw.Flush()
	}
	bw.Write(head[:i])
	bw.Write(slot[:len(slot)-len("null")])
	bw.WriteByte('[')
	var item bytes.Buffer
	enc := json.NewEncoder(&item) // one encoder: its buffers serve every item
	enc.SetIndent("    ", "  ")
	for n := range items {
		item.Reset()
		if err := enc.Encode(&items[n]); err != nil {
			return err
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n    ")
		bw.Write(bytes.TrimSuffix(item.Bytes(), []byte("\n")))
	}
	if len(items) > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteByte(']')
	bw.Write(head[i+len(slot):])
	bw.WriteByte('\n')
	return bw.Flush()
}
