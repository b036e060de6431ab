package primary

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"seafbak/internal/tlsutil"
	"seafbak/sync/object"
)

// HTTP reads objects through Seafile's HTTP sync protocol: the file server's
// /seafhttp routes that the desktop client and Seafile's own backup server use. A backup
// host then needs only the primary's URL and database, whatever storage the primary
// keeps its objects in.
type HTTP struct {
	base      *url.URL
	client    *http.Client
	syncToken []byte
	opts      HTTPOptions
	log       *slog.Logger
	inflight  *inflight
	// refused, if set, is told each library whose token the server refused (403).
	refused func(repoID string)
}

var _ Objects = (*HTTP)(nil)

// HTTPOptions configures the client. Zero values take the defaults noted.
type HTTPOptions struct {
	URL       string // e.g. https://seafile.example.com/seafhttp
	SyncToken string // the secret library tokens are derived from
	CAFile    string // PEM file of a private CA; TLS is verified either way
	// ConnectTimeout bounds dialing and the TLS handshake (default 10 s).
	ConnectTimeout time.Duration
	// StallTimeout bounds how long a response may send nothing: headers or body
	// (default 60 s). A slow but moving transfer is never cut off.
	StallTimeout time.Duration
	// Attempts is how many times a request is tried on resets, timeouts and 5xx
	// (default 4); 4xx answers are never retried.
	Attempts int
	// Backoff is the first retry's wait, doubled each time (default 200 ms).
	Backoff time.Duration
	// Conns is how many connections are kept alive to the server (default
	// MaxInFlight).
	Conns int
	// MaxInFlight bounds the requests sent at once (default 32). Below it the number
	// adapts to the server's answers: it grows while they come back whole and halves
	// when the server says it is overloaded.
	MaxInFlight int
	Log         *slog.Logger
}

// Errors of the protocol, each with what the admin should do.
var (
	ErrUnauthorized = errors.New("the primary refused the library token (HTTP 403): check primary.sync_token, and that seafbak could create the RepoUserToken row (INSERT grant on RepoUserToken); the file server caches tokens for about 2 hours")
	ErrCorrupted    = errors.New("the primary marks this library as corrupted (HTTP 445): repair it on the primary with seaf-fsck")
)

// Token is the library token seafbak uses for repoID: hex(HMAC-SHA1(syncToken, repoID)).
// Derived, so it is stable across runs and hosts and never stored by seafbak.
func Token(syncToken, repoID string) string {
	m := hmac.New(sha1.New, []byte(syncToken))
	m.Write([]byte(repoID))
	return hex.EncodeToString(m.Sum(nil))
}

// NewHTTP makes a client for the file server at opts.URL.
func NewHTTP(opts HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(strings.TrimSuffix(opts.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("primary url %q: want http(s)://host[:port]/seafhttp", opts.URL)
	}
	if opts.SyncToken == "" {
		return nil, errors.New("primary sync token is empty")
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = 60 * time.Second
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 4
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 32
	}
	if opts.Conns <= 0 {
		opts.Conns = opts.MaxInFlight
	}
	tlsConf, err := tlsutil.PrivateCA(opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("primary %w", err)
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment, // HTTPS_PROXY, NO_PROXY
		DialContext:           (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.StallTimeout,
		MaxIdleConns:          opts.Conns,
		MaxIdleConnsPerHost:   opts.Conns,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     false, // the file server speaks HTTP/1.1; many small requests pipeline fine over keep-alive
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Redirects are not followed: Go would send the library's token (an owner's, good
	// for writes too) to whatever host a redirect names, and turn the protocol's POSTs
	// into GETs without a body. The file server never redirects; a proxy in front that
	// does is reported with where it points.
	client := &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &HTTP{base: u, client: client, syncToken: []byte(opts.SyncToken), opts: opts, log: log,
		inflight: newInflight(min(8, opts.MaxInFlight), opts.MaxInFlight)}, nil
}

// BlockConcurrency is how many blocks one library's sync should copy at once: enough
// to fill the adaptive limit on requests, which every sync of the process shares.
func (h *HTTP) BlockConcurrency() int { return h.opts.MaxInFlight }

// overloaded says whether a failed request is the server (or the path to it) asking
// for less: an overload answer, or no answer in time.
func overloaded(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusServiceUnavailable || se.code == http.StatusTooManyRequests
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errStalled)
}

// statusError is an HTTP answer other than 200.
type statusError struct {
	method, route string
	code          int
	body          string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("primary answered %s %s with HTTP %d", e.method, e.route, e.code)
	if e.body != "" {
		msg += ": " + e.body
	}
	return msg
}

func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		// 429 and 408: a proxy or rate limiter in front asking to come back later.
		return se.code >= 500 && se.code != 501 || se.code == http.StatusTooManyRequests || se.code == http.StatusRequestTimeout
	}
	return !errors.Is(err, context.Canceled) // resets, timeouts, EOFs, refused connections
}

// request is one protocol call; route is for messages (no token in it, ever).
type request struct {
	method string
	path   string // under the base URL
	query  url.Values
	body   []byte
	repoID string // "" for calls without a token
	// answers500: on this route a 500 is the server's answer about an object (it cannot
	// read it), not a passing failure, so it is returned at once for the caller to ask
	// check-fs/check-blocks which of the two it was.
	answers500 bool
}

// do runs a request with retries and returns the 200 response, whose body the caller
// must close. The body is guarded against stalls.
func (h *HTTP) do(ctx context.Context, r request) (*http.Response, error) {
	var lastErr error
	wait := h.opts.Backoff
	for attempt := 1; attempt <= h.opts.Attempts; attempt++ {
		if attempt > 1 {
			// Jitter keeps parallel workers from retrying in lockstep.
			d := wait/2 + rand.N(wait)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d):
			}
			wait = min(wait*2, 10*time.Second)
		}
		resp, err := h.once(ctx, r)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		var se *statusError
		if r.answers500 && errors.As(err, &se) && se.code == http.StatusInternalServerError {
			return nil, err
		}
		if ctx.Err() != nil || !retryable(err) {
			break
		}
		h.log.Debug("retrying primary request", "route", r.path, "attempt", attempt, "err", err)
	}
	if ctx.Err() == nil && retryable(lastErr) {
		return nil, &UnreachableError{What: fmt.Sprintf("%s %s, %d tries", r.method, r.path, h.opts.Attempts), Err: lastErr}
	}
	return nil, lastErr
}

func (h *HTTP) once(ctx context.Context, r request) (*http.Response, error) {
	u := *h.base
	u.Path = h.base.Path + r.path
	if r.query != nil {
		u.RawQuery = r.query.Encode()
	}
	rctx, cancel := context.WithCancelCause(ctx)
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(rctx, r.method, u.String(), body)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if r.repoID != "" {
		req.Header.Set("Seafile-Repo-Token", Token(string(h.syncToken), r.repoID))
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	release, err := h.inflight.acquire(ctx)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		cancel(nil)
		err = fmt.Errorf("%s %s: %w", r.method, r.path, scrub(err, h.base))
		release(ctx.Err() == nil && overloaded(err))
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		// The error's body is bounded in time as in size: a server (or proxy) that
		// sent the status and then nothing would hold this request, its slot and the
		// library's lock for good.
		stall := time.AfterFunc(h.opts.StallTimeout, func() { cancel(fmt.Errorf("%w for %s", errStalled, h.opts.StallTimeout)) })
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		stall.Stop()
		resp.Body.Close()
		cancel(nil)
		err := &statusError{method: r.method, route: r.path, code: resp.StatusCode, body: strings.TrimSpace(string(msg))}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			where := resp.Header.Get("Location")
			if lu, perr := url.Parse(where); perr == nil {
				lu.User, lu.RawQuery = nil, ""
				where = lu.String()
			}
			err.body = fmt.Sprintf("a redirect to %q, not followed: set primary.url to the file server's own address", where)
		}
		release(overloaded(err))
		return nil, err
	}
	resp.Body = newStallGuard(resp.Body, h.opts.StallTimeout, cancel, release)
	return resp, nil
}

// scrub keeps URLs in errors but never a query string (no secrets travel there, but
// a proxy's rewritten URL could carry userinfo).
func scrub(err error, base *url.URL) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.User = nil
			u.RawQuery = ""
			ue.URL = u.String()
		}
	}
	return err
}

// stallGuard cancels a response whose body sends nothing for too long. A plain
// client timeout would also cut off a large block arriving slowly but steadily. Its
// clock runs only inside Read, while the caller waits on the primary: a caller slow to
// take what arrived (a pack-fs callback hashing blocks for a re-check, a slow store
// behind a block) is not the primary stalling, and was cut off, retried and taken as
// overload, halving the requests in flight for the whole process.
type stallGuard struct {
	rc      io.ReadCloser
	timer   *time.Timer
	limit   time.Duration
	cancel  context.CancelCauseFunc
	release func(overloaded bool) // the request's in-flight slot: given back at the end of the body
	stalled atomic.Bool
}

var errStalled = errors.New("the primary stopped sending")

func newStallGuard(rc io.ReadCloser, limit time.Duration, cancel context.CancelCauseFunc, release func(bool)) *stallGuard {
	g := &stallGuard{rc: rc, limit: limit, cancel: cancel, release: release}
	g.timer = time.AfterFunc(limit, func() {
		g.stalled.Store(true)
		cancel(fmt.Errorf("%w for %s", errStalled, limit))
	})
	g.timer.Stop() // started by each Read
	return g
}

func (g *stallGuard) Read(p []byte) (int, error) {
	g.timer.Reset(g.limit)
	n, err := g.rc.Read(p)
	g.timer.Stop()
	if err != nil {
		// The answer is over (whole, or broken off): its slot is free for the next.
		g.release(err != io.EOF && (g.stalled.Load() || overloaded(err)))
	}
	return n, err
}

func (g *stallGuard) Close() error {
	g.timer.Stop()
	err := g.rc.Close()
	g.cancel(nil)
	g.release(false)
	return err
}

// readAll reads a small response, bounded.
func readAll(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: answer larger than %d bytes", object.ErrInvalid, limit)
	}
	return data, nil
}

// CheckProtocol asks the server's protocol version and explains a wrong URL.
func (h *HTTP) CheckProtocol(ctx context.Context) error {
	resp, err := h.do(ctx, request{method: "GET", path: "/protocol-version"})
	if err != nil {
		var se *statusError
		if errors.As(err, &se) && se.code == http.StatusNotFound {
			return fmt.Errorf("primary url %s does not serve Seafile's sync protocol (no /protocol-version): use the file server's address, usually https://host/seafhttp or http://host:8082", h.base.Redacted())
		}
		return fmt.Errorf("primary url %s: %w", h.base.Redacted(), err)
	}
	data, err := readAll(resp, 4096)
	if err != nil {
		return fmt.Errorf("primary url %s: %w", h.base.Redacted(), err)
	}
	var v struct {
		Version *int `json:"version"`
	}
	if json.Unmarshal(data, &v) != nil || v.Version == nil {
		return fmt.Errorf("primary url %s answered /protocol-version with %q, not Seafile's {\"version\": N}: is it the file server's address?", h.base.Redacted(), truncate(string(data)))
	}
	if *v.Version < 2 {
		return fmt.Errorf("primary speaks sync protocol version %d; seafbak needs 2 or later (Seafile 6+)", *v.Version)
	}
	return nil
}

// headsBatch is how many libraries one head-commits-multi request asks about.
const headsBatch = 1000

// Heads asks the master heads of many libraries, in batches. Libraries without a master
// branch are absent from the answer, as the server leaves them out; so are those whose
// head is not a commit id (a damaged Branch row, which the server passes on as it is):
// that is the library's problem, told when its head is compared, not the batch's.
func (h *HTTP) Heads(ctx context.Context, ids []string) (map[string]string, error) {
	heads := make(map[string]string, len(ids))
	for start := 0; start < len(ids); start += headsBatch {
		batch := ids[start:min(start+headsBatch, len(ids))]
		body, _ := json.Marshal(batch)
		resp, err := h.do(ctx, request{method: "POST", path: "/repo/head-commits-multi/", body: body})
		if err != nil {
			return nil, fmt.Errorf("list heads: %w", err)
		}
		data, err := readAll(resp, int64(len(batch))*200+1024)
		if err != nil {
			return nil, fmt.Errorf("list heads: %w", err)
		}
		var got map[string]string
		if err := json.Unmarshal(data, &got); err != nil {
			return nil, fmt.Errorf("list heads: %w: %v", object.ErrInvalid, err)
		}
		asked := make(map[string]bool, len(batch))
		for _, id := range batch {
			asked[id] = true
		}
		for id, head := range got {
			if !asked[id] {
				return nil, fmt.Errorf("list heads: %w: unexpected entry %q: %q", object.ErrInvalid, truncate(id), truncate(head))
			}
			if object.ValidID(head) {
				heads[id] = head
			}
		}
	}
	return heads, nil
}

// Head asks one library's head with its token: it also proves the token works.
func (h *HTTP) Head(ctx context.Context, lib Library) (string, error) {
	resp, err := h.do(ctx, request{method: "GET", path: "/repo/" + lib.ID + "/commit/HEAD", repoID: lib.ID})
	if err != nil {
		return "", h.libraryError(lib, err)
	}
	data, err := readAll(resp, 4096)
	if err != nil {
		return "", err
	}
	var v struct {
		Corrupted *int   `json:"is_corrupted"`
		Head      string `json:"head_commit_id"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return "", fmt.Errorf("%w: commit/HEAD answered %q", object.ErrInvalid, truncate(string(data)))
	}
	if v.Corrupted != nil && *v.Corrupted != 0 {
		// What the file server answers when its own database query for the head
		// failed (the library's corruption is HTTP 445): a passing failure.
		return "", &UnreachableError{What: "GET /repo/" + lib.ID + "/commit/HEAD",
			Err: errors.New(`the file server answered {"is_corrupted": 1}: it could not read the head from its database (see its seafile.log)`)}
	}
	if !object.ValidID(v.Head) {
		return "", fmt.Errorf("%w: commit/HEAD answered %q", object.ErrInvalid, truncate(string(data)))
	}
	return v.Head, nil
}

// libraryError turns protocol statuses about a library into errors that say what to do.
func (h *HTTP) libraryError(lib Library, err error) error {
	var se *statusError
	if !errors.As(err, &se) {
		return err
	}
	switch se.code {
	case 444:
		return fmt.Errorf("library %s: %w (HTTP 444)", lib.ID, ErrLibraryGone)
	case 445:
		return ErrCorrupted
	case http.StatusForbidden:
		if h.refused != nil {
			h.refused(lib.ID)
		}
		return ErrUnauthorized
	case http.StatusBadRequest:
		return fmt.Errorf("%w (the request was malformed or carried no token)", err)
	}
	return err
}

func (h *HTTP) Commit(ctx context.Context, lib Library, id string) ([]byte, error) {
	if err := object.CheckID(id); err != nil {
		return nil, err
	}
	req := request{method: "GET", path: "/repo/" + lib.ID + "/commit/" + id, repoID: lib.ID}
	for restarts := 0; ; restarts++ {
		resp, err := h.do(ctx, req)
		if err != nil {
			var se *statusError
			if errors.As(err, &se) && se.code == http.StatusNotFound {
				return nil, &NotFoundError{Kind: "commit", ID: id}
			}
			return nil, h.libraryError(lib, err)
		}
		data, err := readAll(resp, object.MaxStoredSize(object.KindCommit))
		if err == nil || errors.Is(err, object.ErrInvalid) || ctx.Err() != nil {
			return data, err
		}
		// The answer broke off: a transport failure, not the commit's fault.
		if restarts+1 >= h.opts.Attempts {
			return nil, &UnreachableError{What: fmt.Sprintf("GET %s, %d tries", req.path, restarts+1), Err: err}
		}
		if err := h.sleep(ctx, restarts+1); err != nil {
			return nil, err
		}
	}
}

// packBatch is how many fs objects one pack-fs request asks for. The server answers at
// most about 1 MiB and the client asks again for the rest.
const packBatch = 1000

// FSObjects fetches fs objects with pack-fs. The server fails a whole request (500) when
// one object is missing or unreadable; check-fs then names the ones it lacks, which are
// answered as not found without retrying, and the rest is asked for again.
func (h *HTTP) FSObjects(ctx context.Context, lib Library, ids []string, fn func(string, []byte, error) error) error {
	for _, id := range ids {
		if err := object.CheckID(id); err != nil {
			return err
		}
	}
	for start := 0; start < len(ids); start += packBatch {
		if err := h.packFS(ctx, lib, ids[start:min(start+packBatch, len(ids))], fn); err != nil {
			return err
		}
	}
	return nil
}

func (h *HTTP) packFS(ctx context.Context, lib Library, ids []string, fn func(string, []byte, error) error) error {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	rest := ids
	failures := 0
	for len(rest) > 0 {
		got, err := h.packOnce(ctx, lib, rest, want, fn)
		if err != nil {
			var se *statusError
			var ce *callbackError
			switch {
			case errors.As(err, &ce):
				return ce.err // the caller's own: FSObjects ends with it
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.As(err, &se) && se.code == http.StatusInternalServerError:
				lacking, cerr := h.lacking(ctx, lib, "check-fs", rest)
				if cerr != nil {
					return fmt.Errorf("pack-fs answered 500; asking check-fs which objects it lacks: %w", cerr)
				}
				for _, id := range lacking {
					delete(want, id)
					if err := fn(id, nil, fmt.Errorf("%w (pack-fs answered 500; check-fs says the server lacks it)", &NotFoundError{Kind: "fs object", ID: id})); err != nil {
						return err
					}
				}
				if len(lacking) > 0 {
					rest = stillWanted(rest, want)
					continue
				}
				// The server says it has them all: a passing failure, or an object it
				// has but cannot read. Either way nothing is known to be missing.
				if failures++; failures >= h.opts.Attempts {
					return &UnreachableError{What: fmt.Sprintf("POST /repo/%s/pack-fs/, %d tries", lib.ID, failures),
						Err: fmt.Errorf("the file server keeps answering 500 for objects check-fs says it has (see its seafile.log): %w", err)}
				}
				if err := h.sleep(ctx, failures); err != nil {
					return err
				}
				continue
			case errors.Is(err, ErrUnreachable):
				return err
			case errors.As(err, &se), errors.Is(err, object.ErrInvalid):
				return h.libraryError(lib, err)
			}
		}
		if got == 0 {
			// Cut before its first whole record (do already retried refusals): ask again.
			if err == nil {
				err = errors.New("pack-fs answered no whole object")
			}
			if failures++; failures >= h.opts.Attempts {
				return &UnreachableError{What: fmt.Sprintf("POST /repo/%s/pack-fs/, %d tries", lib.ID, failures), Err: err}
			}
			if err := h.sleep(ctx, failures); err != nil {
				return err
			}
			continue
		}
		failures = 0
		rest = stillWanted(rest, want)
	}
	return nil
}

func stillWanted(ids []string, want map[string]bool) []string {
	next := ids[:0:0]
	for _, id := range ids {
		if want[id] {
			next = append(next, id)
		}
	}
	return next
}

// sleep waits the backoff before the failures-th retry, or until ctx ends.
func (h *HTTP) sleep(ctx context.Context, failures int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(h.opts.Backoff << failures):
		return nil
	}
}

// MissingFS asks check-fs which of ids the server lacks, a batch at a time.
func (h *HTTP) MissingFS(ctx context.Context, lib Library, ids []string) ([]string, error) {
	var missing []string
	for start := 0; start < len(ids); start += packBatch {
		batch := ids[start:min(start+packBatch, len(ids))]
		for _, id := range batch {
			if err := object.CheckID(id); err != nil {
				return nil, err
			}
		}
		got, err := h.lacking(ctx, lib, "check-fs", batch)
		if err != nil {
			return nil, err
		}
		missing = append(missing, got...)
	}
	return missing, nil
}

// lacking asks check-fs or check-blocks which of ids the server does not have: the
// protocol's way to tell "missing" from "failing" after a 500.
func (h *HTTP) lacking(ctx context.Context, lib Library, route string, ids []string) ([]string, error) {
	body, _ := json.Marshal(ids)
	resp, err := h.do(ctx, request{method: "POST", path: "/repo/" + lib.ID + "/" + route + "/", body: body, repoID: lib.ID})
	if err != nil {
		return nil, h.libraryError(lib, err)
	}
	// An answer that cannot be used (a proxy's page, ids not asked) tells nothing of the
	// objects asked about: never their fault (object.ErrInvalid would make them corrupt,
	// a hole under --force), the server not answering.
	unusable := func(format string, a ...any) error {
		return &UnreachableError{What: "POST /repo/" + lib.ID + "/" + route + "/", Err: fmt.Errorf(format, a...)}
	}
	data, err := readAll(resp, 2*int64(len(body))+64)
	if err != nil {
		return nil, unusable("%v", err)
	}
	var got []string
	if err := json.Unmarshal(data, &got); err != nil {
		return nil, unusable("answer is not a JSON list of ids: %q", truncate(string(data)))
	}
	asked := make(map[string]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
	}
	for _, id := range got {
		if !asked[id] {
			return nil, unusable("answered id %q, which was not asked for", truncate(id))
		}
		delete(asked, id) // and refuse it twice
	}
	return got, nil
}

// packOnce makes one pack-fs request and hands each record to fn. It returns how many
// records arrived; records for ids not wanted (or twice) are an error.
func (h *HTTP) packOnce(ctx context.Context, lib Library, ids []string, want map[string]bool, fn func(string, []byte, error) error) (int, error) {
	body, _ := json.Marshal(ids)
	resp, err := h.do(ctx, request{method: "POST", path: "/repo/" + lib.ID + "/pack-fs/", body: body, repoID: lib.ID, answers500: true})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n := 0
	var hdr [44]byte
	for {
		if _, err := io.ReadFull(resp.Body, hdr[:]); err != nil {
			if err == io.EOF {
				return n, nil
			}
			// A record cut short: keep what was whole, ask again for the rest.
			h.log.Debug("pack-fs answer cut short; asking again for the rest", "repo", lib.ID, "got", n, "err", err)
			return n, fmt.Errorf("pack-fs: %w", err)
		}
		id := string(hdr[:40])
		size := binary.BigEndian.Uint32(hdr[40:])
		if !want[id] {
			return n, fmt.Errorf("%w: pack-fs sent object %q, which was not asked for (or twice)", object.ErrInvalid, truncate(id))
		}
		if int64(size) > object.MaxStoredSize(object.KindFS) {
			// The server's own word about one object: that object is corrupt on the
			// primary. Its bytes are not read; the rest is asked for again.
			delete(want, id)
			if err := fn(id, nil, fmt.Errorf("%w: pack-fs record for %s claims %d bytes, more than the %d an fs object may have", object.ErrInvalid, id, size, object.MaxStoredSize(object.KindFS))); err != nil {
				return n + 1, &callbackError{err}
			}
			return n + 1, nil
		}
		// Grown as the bytes arrive, not made at the size the record claims: 32 copies
		// each told of a 72 MiB object would have held 2.3 GB before a byte came.
		data, err := readExactly(resp.Body, int64(size))
		if err != nil {
			return n, fmt.Errorf("pack-fs: %w", err)
		}
		delete(want, id)
		n++
		if err := fn(id, data, nil); err != nil {
			return n, &callbackError{err}
		}
	}
}

// readExactly reads n bytes from r, into a buffer grown as they arrive (small objects,
// the common case, in one step); fewer is io.ErrUnexpectedEOF.
func readExactly(r io.Reader, n int64) ([]byte, error) {
	const step = 64 << 10
	if n <= step {
		data := make([]byte, n)
		_, err := io.ReadFull(r, data)
		return data, err
	}
	var buf bytes.Buffer
	buf.Grow(step)
	got, err := io.Copy(&buf, io.LimitReader(r, n))
	if err == nil && got < n {
		err = io.ErrUnexpectedEOF
	}
	return buf.Bytes(), err
}

// callbackError is FSObjects' callback's own error, returned as it is rather than taken
// for the server's: it was dropped when it matched none of the server's kinds, and the
// rest asked for again, so FSObjects returned nil.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }

// Block streams a block. If the connection breaks mid-block, the block is asked for
// again and the bytes already delivered are skipped, so the caller sees one stream.
func (h *HTTP) Block(ctx context.Context, lib Library, id string) (io.ReadCloser, error) {
	if err := object.CheckID(id); err != nil {
		return nil, err
	}
	b := &blockReader{h: h, ctx: ctx, lib: lib, id: id}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

type blockReader struct {
	h        *HTTP
	ctx      context.Context
	lib      Library
	id       string
	body     io.ReadCloser
	done     int64 // bytes delivered to the caller
	restarts int
	// broke is a transfer failure that came with bytes (a connection dropped inside a
	// chunk: n > 0 and io.ErrUnexpectedEOF): those bytes went to the caller, and the
	// next Read restarts the transfer from there.
	broke error
}

func (b *blockReader) open() error {
	var resp *http.Response
	for failures := 0; ; {
		var err error
		resp, err = b.h.do(b.ctx, request{method: "GET", path: "/repo/" + b.lib.ID + "/block/" + b.id, repoID: b.lib.ID, answers500: true})
		if err == nil {
			break
		}
		var se *statusError
		switch {
		case b.ctx.Err() != nil:
			return b.ctx.Err()
		case errors.As(err, &se) && (se.code == http.StatusInternalServerError || se.code == http.StatusNotFound):
			// A 404 never comes from the file server for a block (its route always
			// matches; a block it lacks is a 500): it is whatever stands in front of
			// it, so check-blocks decides, as for a 500.
			// The file server answers 500 for a block it lacks, and for one it cannot
			// read right now: check-blocks tells which.
			lacking, cerr := b.h.lacking(b.ctx, b.lib, "check-blocks", []string{b.id})
			if cerr != nil {
				if b.ctx.Err() != nil {
					return b.ctx.Err()
				}
				return fmt.Errorf("block answered %d; asking check-blocks whether the server has it: %w", se.code, cerr)
			}
			if len(lacking) == 1 {
				return fmt.Errorf("%w (%v; check-blocks says the server lacks it)", &NotFoundError{Kind: "block", ID: b.id}, err)
			}
			if failures++; failures >= b.h.opts.Attempts {
				// It has the block and, asked again and again, cannot read it: a block
				// file damaged or empty on its disk (its getBlockInfo refuses a size of
				// 0), which the data-dir source would have read as corrupt. So corrupt,
				// a hole under --force (retried at each sync), not the server down.
				return fmt.Errorf("%w: the file server keeps answering %d for block %s, which check-blocks says it has, %d tries: "+
					"its block file is damaged or empty (see its seafile.log; seaf-fsck): %v", object.ErrInvalid, se.code, b.id, failures, err)
			}
			if err := b.h.sleep(b.ctx, failures); err != nil {
				return err
			}
		default:
			return b.h.libraryError(b.lib, err)
		}
	}
	if b.done > 0 {
		if _, err := io.CopyN(io.Discard, resp.Body, b.done); err != nil {
			resp.Body.Close()
			return &brokenError{err}
		}
	}
	b.body = resp.Body
	return nil
}

func (b *blockReader) Read(p []byte) (int, error) {
	for {
		err := b.broke
		b.broke = nil
		if err == nil {
			var n int
			n, err = b.body.Read(p)
			b.done += int64(n)
			if err == nil || err == io.EOF {
				return n, err
			}
			if n > 0 {
				b.broke = err
				return n, nil
			}
		}
		if b.ctx.Err() != nil {
			return 0, fmt.Errorf("block %s: %w", b.id, err)
		}
		b.body.Close()
		for {
			if b.restarts >= b.h.opts.Attempts {
				return 0, &UnreachableError{What: fmt.Sprintf("GET /repo/%s/block/%s, %d restarts", b.lib.ID, b.id, b.restarts), Err: err}
			}
			b.restarts++
			b.h.log.Debug("block transfer broke; asking again", "repo", b.lib.ID, "block", b.id, "at", b.done, "err", err)
			oerr := b.open()
			if oerr == nil {
				break
			}
			var broken *brokenError
			if !errors.As(oerr, &broken) {
				return 0, fmt.Errorf("block %s: %w (after %v)", b.id, oerr, err)
			}
			err = broken.err // broke again before reaching where it broke: another restart
		}
	}
}

// brokenError is a resumed block transfer that broke before it got back to the bytes
// already delivered: a transport failure like the first.
type brokenError struct{ err error }

func (e *brokenError) Error() string { return "resumed block transfer broke: " + e.err.Error() }
func (e *brokenError) Unwrap() error { return e.err }

func (b *blockReader) Close() error { return b.body.Close() }
