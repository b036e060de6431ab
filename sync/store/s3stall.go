package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	gosync "sync"
	"time"
)

// s3StallTimeout is how long an S3 request may move no byte before it is given up,
// when S3Options.StallTimeout is not set.
const s3StallTimeout = 60 * time.Second

// ErrS3Stalled marks a request the S3 server stopped answering in the middle of: it
// took no byte of an upload, sent no header or no byte of a body, for the stall time.
// It is a failure that may go away, retried as a reset is.
var ErrS3Stalled = errors.New("the S3 server stopped moving bytes")

// stallTransport gives up a request whose bytes stop moving, as the primary's client
// does (primary.HTTP's stallGuard): once a response has started, net/http has no
// timeout at all, so a server that sent its headers and then stalled the body, or
// stopped reading an upload, hung a sync for good. A plain deadline per request would
// cut off a large block moving slowly but steadily instead.
//
// The clock runs from the request's start until its answer's headers, and is set back
// each time the transport takes a byte of the upload; then, like the primary's, only
// inside the body's Reads: a caller slow to take what arrived (a store copy writing
// the block elsewhere) is not the server stalling.
type stallTransport struct {
	rt    http.RoundTripper
	limit time.Duration
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &stallWatch{limit: t.limit, cancel: cancel, sending: true}
	w.timer = time.AfterFunc(t.limit, w.fire)
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &sentBody{ReadCloser: req.Body, w: w}
	}
	if getBody := req.GetBody; getBody != nil {
		// The transport resends the body through GetBody when a kept-alive connection
		// turns out dead: its bytes count as moving too.
		req.GetBody = func() (io.ReadCloser, error) {
			b, err := getBody()
			if err != nil || b == http.NoBody {
				return b, err
			}
			return &sentBody{ReadCloser: b, w: w}, nil
		}
	}
	resp, err := t.rt.RoundTrip(req)
	w.answered()
	if err != nil {
		cancel(nil)
		return nil, w.explain(err)
	}
	resp.Body = &receivedBody{ReadCloser: resp.Body, w: w}
	return resp, nil
}

// stallWatch is one request's clock.
type stallWatch struct {
	limit  time.Duration
	cancel context.CancelCauseFunc

	mu      gosync.Mutex
	timer   *time.Timer
	sending bool // until the answer's headers: the upload's bytes set the clock back
	stalled bool
}

func (w *stallWatch) fire() {
	w.mu.Lock()
	w.stalled = true
	w.mu.Unlock()
	w.cancel(w.err())
}

func (w *stallWatch) err() error {
	return fmt.Errorf("%w for %s", ErrS3Stalled, w.limit)
}

// sent is a byte of the upload taken by the transport: the clock starts again. Once
// the answer has come (a server may answer before it read the whole upload) it no
// longer counts.
func (w *stallWatch) sent() {
	w.mu.Lock()
	if w.sending && !w.stalled {
		w.timer.Reset(w.limit)
	}
	w.mu.Unlock()
}

func (w *stallWatch) answered() {
	w.mu.Lock()
	w.sending = false
	w.timer.Stop()
	w.mu.Unlock()
}

// explain names a failure the clock caused, where net/http does not already report
// the cancellation's cause (a body's read says only "context canceled").
func (w *stallWatch) explain(err error) error {
	w.mu.Lock()
	stalled := w.stalled
	w.mu.Unlock()
	if stalled && err != nil && err != io.EOF && !errors.Is(err, ErrS3Stalled) {
		return fmt.Errorf("%w (%v)", w.err(), err)
	}
	return err
}

type sentBody struct {
	io.ReadCloser
	w *stallWatch
}

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.sent()
	}
	return n, err
}

type receivedBody struct {
	io.ReadCloser
	w *stallWatch
}

func (b *receivedBody) Read(p []byte) (int, error) {
	b.w.mu.Lock()
	if !b.w.stalled {
		b.w.timer.Reset(b.w.limit)
	}
	b.w.mu.Unlock()
	n, err := b.ReadCloser.Read(p)
	b.w.mu.Lock()
	b.w.timer.Stop()
	b.w.mu.Unlock()
	return n, b.w.explain(err)
}

func (b *receivedBody) Close() error {
	b.w.answered()
	err := b.ReadCloser.Close()
	b.w.cancel(nil)
	return err
}
