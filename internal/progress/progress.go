// Package progress is the one way long work reports how far it is: a sync copying
// blocks, a verify reading the store, a restore writing files. The CLI shows it as a
// progress bar on a terminal; nothing else listens.
package progress

// Meter follows work counted in objects and bytes. Todo grows the known amount of work
// (it may be called again and again as the total is discovered), Done adds work
// finished, so done ≤ todo at every moment. Bytes are those of blocks (file content),
// which are what takes the time; a caller that does not know them passes 0.
// Implementations must be safe for concurrent use (a scan syncs several libraries at
// once into one meter) and quick (they are called for every object).
type Meter interface {
	Todo(objects, bytes int64)
	Done(objects, bytes int64)
}
