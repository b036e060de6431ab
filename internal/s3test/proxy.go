package s3test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Fault is what a Proxy does to one request.
type Fault int

const (
	// Pass forwards the request untouched.
	Pass Fault = iota
	// SlowDown answers 503 SlowDown, as S3 does when throttling, without forwarding.
	SlowDown
	// FailAfter forwards the request (a PUT is stored) and then answers 500
	// InternalError instead of the server's answer: the client cannot know it landed.
	FailAfter
	// CutBody forwards the first CutAt bytes of the request body and then breaks the
	// upload, as a client killed mid-PUT does.
	CutBody
)

// Proxy sits between a client and a Server and injects faults chosen per request.
type Proxy struct {
	// Endpoint is the proxy's host:port; point clients at it.
	Endpoint string
	// CutAt is how many body bytes CutBody lets through.
	CutAt int64
	// OnCut, if set, runs when CutBody breaks an upload (e.g. to kill the server then).
	OnCut func()

	mu       sync.Mutex
	decide   func(r *http.Request) Fault
	injected map[Fault]int
	requests int
}

// NewProxy starts a proxy to target (host:port); it stops when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{injected: map[Fault]int{}}
	u := &url.URL{Scheme: "http", Host: target}
	rp := httputil.NewSingleHostReverseProxy(u) // keeps the client's Host: it is signed
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Header.Get("X-S3test-Fault") == "after" {
			return errFailAfter
		}
		return nil
	}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		writeS3Error(w, http.StatusInternalServerError, "InternalError", "s3test proxy: "+err.Error())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Endpoint = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := p.fault(r)
		switch f {
		case SlowDown:
			writeS3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
			return
		case FailAfter:
			// The marker travels on the outgoing request: the server ignores it, unsigned.
			r.Header.Set("X-S3test-Fault", "after")
		case CutBody:
			r.Body = &cutReader{r: r.Body, left: p.CutAt, onCut: p.OnCut}
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p
}

var errFailAfter = errors.New("injected failure after the server's answer")

// Inject sets the rule choosing each request's fault (nil: pass everything).
func (p *Proxy) Inject(decide func(r *http.Request) Fault) {
	p.mu.Lock()
	p.decide = decide
	p.mu.Unlock()
}

// Injected is how many requests got fault f.
func (p *Proxy) Injected(f Fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[f]
}

// Requests is how many requests reached the proxy.
func (p *Proxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

func (p *Proxy) fault(r *http.Request) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	f := Pass
	if p.decide != nil {
		f = p.decide(r)
	}
	p.injected[f]++
	return f
}

// FirstN returns a rule giving fault f to the first n requests that match, then Pass.
func FirstN(n int, f Fault, match func(r *http.Request) bool) func(r *http.Request) Fault {
	var mu sync.Mutex
	return func(r *http.Request) Fault {
		mu.Lock()
		defer mu.Unlock()
		if n > 0 && (match == nil || match(r)) {
			n--
			return f
		}
		return Pass
	}
}

// IsPut matches object uploads.
func IsPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Count(r.URL.Path, "/") >= 2
}

type cutReader struct {
	r     io.ReadCloser
	left  int64
	onCut func()
}

func (c *cutReader) Read(b []byte) (int, error) {
	if c.left <= 0 {
		if c.onCut != nil {
			c.onCut()
			c.onCut = nil
		}
		return 0, errors.New("s3test proxy: upload cut")
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutReader) Close() error { return c.r.Close() }

func writeS3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>`+msg+`</Message></Error>`)
}
