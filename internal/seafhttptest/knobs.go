package seafhttptest

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Misbehaviour knobs. All are safe for concurrent use and may be changed
// while requests are being served. Counted knobs ("the next n requests")
// replace any earlier setting of the same knob for the same route; n <= 0
// cancels it. A knob set for a specific route takes precedence over one set
// for RouteAny.

type cutKind int

const (
	cutStall cutKind = iota + 1 // pause, then send the rest
	cutReset                    // TCP RST (SO_LINGER 0, then close)
	cutClose                    // plain close (FIN), no TLS close_notify
)

type bodyCut struct {
	n     int
	kind  cutKind
	after int64
	d     time.Duration
}

type failSpec struct {
	n      int
	status int
}

type connCut struct {
	n   int
	rst bool
}

type knobs struct {
	mu        sync.Mutex
	delay     map[Route]time.Duration
	fail      map[Route]*failSpec
	drop      map[Route]*connCut
	body      map[Route]*bodyCut
	truncPack int
	corrupt   map[string][]byte
}

// SetDelay makes every response of every route wait d before it is
// computed (a slow server); 0 removes the delay. A route-specific delay
// (SetRouteDelay) takes precedence. The wait ends early when the client
// goes away or the server closes.
func (s *Server) SetDelay(d time.Duration) { s.SetRouteDelay(RouteAny, d) }

// SetRouteDelay is SetDelay for one route.
func (s *Server) SetRouteDelay(route Route, d time.Duration) {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.delay == nil {
		k.delay = make(map[Route]time.Duration)
	}
	if d <= 0 {
		delete(k.delay, route)
		return
	}
	k.delay[route] = d
}

// FailNext makes the next n requests of route answer 500 with the file
// server's empty error body ("\n", text/plain), before any token check: a
// 500 storm. RouteAny counts requests of every route.
func (s *Server) FailNext(route Route, n int) {
	s.FailNextStatus(route, n, http.StatusInternalServerError)
}

// FailNextStatus is FailNext with another status, e.g. 502 or 503 as a
// proxy in front of the file server would answer.
func (s *Server) FailNextStatus(route Route, n, status int) {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail == nil {
		k.fail = make(map[Route]*failSpec)
	}
	if n <= 0 {
		delete(k.fail, route)
		return
	}
	k.fail[route] = &failSpec{n: n, status: status}
}

// ResetNext makes the next n requests of route get no answer at all: the
// connection is reset (TCP RST) as soon as the request has arrived.
func (s *Server) ResetNext(route Route, n int) { s.setDrop(route, n, true) }

// CloseNext is ResetNext with an orderly close (FIN) instead of a reset:
// the client sees EOF before any response.
func (s *Server) CloseNext(route Route, n int) { s.setDrop(route, n, false) }

func (s *Server) setDrop(route Route, n int, rst bool) {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.drop == nil {
		k.drop = make(map[Route]*connCut)
	}
	if n <= 0 {
		delete(k.drop, route)
		return
	}
	k.drop[route] = &connCut{n: n, rst: rst}
}

// Stall makes the next n successful (200) responses of route with a
// non-empty body stop after afterBytes bytes of body, headers and those
// bytes flushed, for d, then send the rest: for testing read timeouts.
// afterBytes is clamped so that at least the last byte of the body is held
// back. The stall ends early when the client goes away or the server closes.
func (s *Server) Stall(route Route, n int, afterBytes int64, d time.Duration) {
	s.setBodyCut(route, &bodyCut{n: n, kind: cutStall, after: afterBytes, d: d})
}

// StallBlocks is Stall for block downloads.
func (s *Server) StallBlocks(n int, afterBytes int64, d time.Duration) {
	s.Stall(RouteBlock, n, afterBytes, d)
}

// ResetAfter makes the next n successful (200) responses of route with a
// non-empty body reset the TCP connection (RST) after afterBytes bytes of
// body (headers and those bytes are sent first; afterBytes is clamped so at
// least the last byte is missing). The client sees "connection reset by
// peer" or an unexpected EOF, whichever its read hits first.
func (s *Server) ResetAfter(route Route, n int, afterBytes int64) {
	s.setBodyCut(route, &bodyCut{n: n, kind: cutReset, after: afterBytes})
}

// ResetBlocks is ResetAfter for block downloads: the next n block bodies are
// cut by a reset after afterBytes bytes.
func (s *Server) ResetBlocks(n int, afterBytes int64) { s.ResetAfter(RouteBlock, n, afterBytes) }

// CloseAfter is ResetAfter with an orderly close (FIN; over TLS without
// close_notify): the client sees an unexpected EOF.
func (s *Server) CloseAfter(route Route, n int, afterBytes int64) {
	s.setBodyCut(route, &bodyCut{n: n, kind: cutClose, after: afterBytes})
}

func (s *Server) setBodyCut(route Route, c *bodyCut) {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.body == nil {
		k.body = make(map[Route]*bodyCut)
	}
	if c.n <= 0 {
		delete(k.body, route)
		return
	}
	k.body[route] = c
}

// TruncatePacks makes the next n pack-fs answers that hold at least one
// object end in the middle of their last record: the 40-byte id and 4-byte
// length of the last object are sent, then only the first half of its
// bytes. The answer is otherwise a normal 200 whose Content-Length matches
// the shortened body, so only a client that checks the framing notices.
// (For a cut at the HTTP level use ResetAfter or CloseAfter on RoutePackFS.)
func (s *Server) TruncatePacks(n int) {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	k.truncPack = max(n, 0)
}

// CorruptObject makes the server answer content instead of the stored
// bytes of the object id wherever it sends that object's bytes: block/<id>
// (Content-Length follows content), pack-fs records (the record's length
// follows content) and commit/<id>. It applies only where the object
// exists; a missing object stays missing. content nil means the stored
// bytes with the last byte inverted. The server's own use of objects
// (fs-id-list's tree walk, head lookups) still reads the stored bytes.
func (s *Server) CorruptObject(id string, content []byte) {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.corrupt == nil {
		k.corrupt = make(map[string][]byte)
	}
	if content == nil {
		k.corrupt[id] = nil
	} else {
		k.corrupt[id] = append([]byte{}, content...)
	}
}

// RestoreObject undoes CorruptObject for id.
func (s *Server) RestoreObject(id string) {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.corrupt, id)
}

// ClearKnobs removes every misbehaviour: delays, pending failures, resets,
// stalls, truncations and corrupted objects.
func (s *Server) ClearKnobs() {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	k.delay, k.fail, k.drop, k.body, k.truncPack, k.corrupt = nil, nil, nil, nil, 0, nil
}

// served returns the bytes to send for object id whose stored bytes are
// stored.
func (s *Server) served(id string, stored []byte) []byte {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.corrupt[id]
	if !ok {
		return stored
	}
	if c != nil {
		return c
	}
	out := append([]byte{}, stored...)
	if len(out) > 0 {
		out[len(out)-1] ^= 0xff
	}
	return out
}

func (s *Server) isCorrupted(id string) bool {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.corrupt[id]
	return ok
}

func (s *Server) takeTruncate() bool {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.truncPack > 0 {
		k.truncPack--
		return true
	}
	return false
}

// takeCounted consumes one use of the knob of route (or of RouteAny).
func takeCounted[T any](m map[Route]*T, route Route, n func(*T) *int) *T {
	for _, key := range []Route{route, RouteAny} {
		if v, ok := m[key]; ok {
			p := n(v)
			*p--
			if *p <= 0 {
				delete(m, key)
			}
			c := *v
			return &c
		}
	}
	return nil
}

func (s *Server) takeBodyCut(route Route) *bodyCut {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	return takeCounted(k.body, route, func(c *bodyCut) *int { return &c.n })
}

// bodyCutArmed reports whether a body knob would apply to the next response of route.
func (s *Server) bodyCutArmed(route Route) bool {
	k := &s.knobs
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.body[route] != nil || k.body[RouteAny] != nil
}

// before applies delay, connection drop and failure knobs; false means the
// request has been answered (or dropped).
func (s *Server) before(rw *respWriter, r *http.Request) bool {
	k := &s.knobs
	k.mu.Lock()
	d, ok := k.delay[rw.route]
	if !ok {
		d = k.delay[RouteAny]
	}
	drop := takeCounted(k.drop, rw.route, func(c *connCut) *int { return &c.n })
	var fail *failSpec
	if drop == nil {
		fail = takeCounted(k.fail, rw.route, func(f *failSpec) *int { return &f.n })
	}
	k.mu.Unlock()

	if !s.sleep(r, d) {
		return false
	}
	if drop != nil {
		kind := cutClose
		if drop.rst {
			kind = cutReset
		}
		rw.cut(kind)
		return false
	}
	if fail != nil {
		http.Error(rw.ResponseWriter, "", fail.status)
		return false
	}
	return true
}

var errCut = errors.New("seafhttptest: connection cut on purpose")

// respWriter applies the body-level knobs (stall, reset, close) to a
// response.
type respWriter struct {
	http.ResponseWriter
	s     *Server
	route Route
	req   *http.Request

	status    int
	decided   bool
	plan      *bodyCut
	limit     int64
	triggered bool
	dead      bool
	written   int64
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Flush() {
	if w.dead {
		return
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *respWriter) Write(p []byte) (int, error) {
	if w.dead {
		return 0, errCut
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.decided && len(p) > 0 {
		w.decided = true
		if w.status == http.StatusOK {
			w.plan = w.s.takeBodyCut(w.route)
		}
		if w.plan != nil {
			w.limit = max(w.plan.after, 0)
			if cl, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil && w.limit > cl-1 {
				w.limit = max(cl-1, 0)
			}
			// Headers may be flushed before the first byte: set the
			// Content-Type net/http would have sniffed from this data.
			if _, ok := w.Header()["Content-Type"]; !ok {
				w.Header().Set("Content-Type", http.DetectContentType(p))
			}
		}
	}
	if w.plan == nil || w.triggered || w.written+int64(len(p)) <= w.limit {
		n, err := w.ResponseWriter.Write(p)
		w.written += int64(n)
		return n, err
	}
	head := w.limit - w.written
	n, err := w.ResponseWriter.Write(p[:head])
	w.written += int64(n)
	if err != nil {
		return n, err
	}
	w.trigger()
	if w.dead {
		return n, errCut
	}
	m, err := w.ResponseWriter.Write(p[head:])
	w.written += int64(m)
	return n + m, err
}

// ReadFrom keeps net/http's sendfile(2) path for a body copied from a file: the real
// file server copies a block file into its ResponseWriter (io.Copy), which the
// kernel sends without copying it through the process. A response a body knob may cut
// is copied through Write, which counts the bytes.
func (w *respWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.dead {
		return 0, errCut
	}
	if w.plan != nil || !w.decided && w.s.bodyCutArmed(w.route) {
		return io.Copy(writeOnly{w}, src)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, src)
	w.written += n
	w.decided = w.decided || n > 0
	return n, err
}

// writeOnly hides ReadFrom, so io.Copy calls Write.
type writeOnly struct{ io.Writer }

// trigger carries out the planned stall or cut at the current position.
func (w *respWriter) trigger() {
	w.triggered = true
	switch w.plan.kind {
	case cutStall:
		http.NewResponseController(w.ResponseWriter).Flush()
		w.s.sleep(w.req, w.plan.d)
	default:
		w.cut(w.plan.kind)
	}
}

// finish runs after the handler: a planned stall or cut that the body was
// too short to reach happens at its end.
func (w *respWriter) finish() {
	if w.plan != nil && !w.triggered && !w.dead && w.written > 0 {
		w.trigger()
	}
}

// cut flushes what has been written and closes the connection under the
// response: with a TCP reset or an orderly close.
func (w *respWriter) cut(kind cutKind) {
	w.dead = true
	rc := http.NewResponseController(w.ResponseWriter)
	if w.status != 0 {
		rc.Flush()
	}
	conn, _, err := rc.Hijack()
	if err != nil {
		// Not hijackable (HTTP/2, a recorder...): abort the handler, which
		// makes net/http drop the stream or connection.
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		raw = nc.NetConn()
	}
	if kind == cutReset {
		if tc, ok := raw.(*net.TCPConn); ok {
			// Let the flushed bytes reach the peer before the RST, which
			// would otherwise discard what is still queued.
			time.Sleep(20 * time.Millisecond)
			tc.SetLinger(0)
		}
	}
	raw.Close()
}
