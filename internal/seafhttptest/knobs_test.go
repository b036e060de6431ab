package seafhttptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// bigBlock is the real library's largest block (131072 bytes).
const bigBlock = "0301e9057660acdf1caf55373116627ff228b44f"

// fetch does a GET with the fixture's token on client c and reads the body,
// returning what arrived and the first error.
func (f *fixture) fetch(c *http.Client, path string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, f.url+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Seafile-Repo-Token", f.token)
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func freshClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.srv.SetDelay(300 * time.Millisecond)
	f.srv.SetRouteDelay(RouteProtocolVersion, 10*time.Millisecond)
	t0 := time.Now()
	f.want(f.get(repoPath(realRepo, "commit/HEAD")), 200, `{"is_corrupted": 0, "head_commit_id": "`+realHead+`"}`)
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Errorf("delayed response took %s", d)
	}
	t0 = time.Now()
	f.want(f.get("/protocol-version"), 200, `{"version": 2}`)
	if d := time.Since(t0); d >= 300*time.Millisecond {
		t.Errorf("route delay not used: %s", d)
	}
	// A client that gives up early gets a timeout.
	if _, _, err := f.fetch(freshClient(100*time.Millisecond), repoPath(realRepo, "commit/HEAD")); err == nil {
		t.Error("no timeout with a 300 ms delay and a 100 ms client timeout")
	}
	f.srv.SetDelay(0)
	f.srv.SetRouteDelay(RouteProtocolVersion, 0)
	t0 = time.Now()
	f.get(repoPath(realRepo, "commit/HEAD"))
	if d := time.Since(t0); d >= 300*time.Millisecond {
		t.Errorf("delay not removed: %s", d)
	}
}

func TestStall(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	want := f.readObject("blocks", realRepo, bigBlock)
	p := repoPath(realRepo, "block/"+bigBlock)

	// Headers and 1000 bytes arrive, then nothing for 2 s: a client with a
	// 500 ms deadline fails while reading the body.
	f.srv.StallBlocks(1, 1000, 2*time.Second)
	req, _ := http.NewRequest(http.MethodGet, f.url+p, nil)
	req.Header.Set("Seafile-Repo-Token", f.token)
	c := freshClient(500 * time.Millisecond)
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("headers should arrive before the stall: %v", err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
		t.Errorf("stalled response: %d, Content-Length %q", res.StatusCode, res.Header.Get("Content-Length"))
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil || len(got) != 1000 || !bytes.Equal(got, want[:1000]) {
		t.Errorf("stalled body: %d bytes, err %v", len(got), err)
	}
	// Consumed: the next one is fine.
	if code, b, err := f.fetch(c, p); err != nil || code != 200 || !bytes.Equal(b, want) {
		t.Errorf("after the stall: %d, %d bytes, %v", code, len(b), err)
	}
	// A patient client gets everything, late.
	f.srv.Stall(RouteBlock, 1, 0, 400*time.Millisecond)
	t0 := time.Now()
	if code, b, err := f.fetch(freshClient(10*time.Second), p); err != nil || code != 200 || !bytes.Equal(b, want) {
		t.Errorf("stall then rest: %d, %d bytes, %v", code, len(b), err)
	}
	if d := time.Since(t0); d < 400*time.Millisecond {
		t.Errorf("stall of 400 ms took %s", d)
	}
	// Stalls apply to other routes too, and only to 200 answers.
	f.srv.Stall(RouteFSIDList, 1, 10, 2*time.Second)
	f.want(f.get(repoPath(realRepo, "fs-id-list/?server-head=bad")), 400, "Invalid server-head parameter.\n")
	if _, _, err := f.fetch(freshClient(500*time.Millisecond), repoPath(realRepo, "fs-id-list/?server-head="+cHead)); err == nil {
		t.Error("fs-id-list stall: no timeout")
	}
}

func TestResetBlocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	want := f.readObject("blocks", realRepo, bigBlock)
	p := repoPath(realRepo, "block/"+bigBlock)
	c := freshClient(10 * time.Second)

	f.srv.ResetBlocks(2, 5000)
	for i := 0; i < 2; i++ {
		code, b, err := f.fetch(c, p)
		if err == nil || code != 200 || len(b) > 5000 || !bytes.Equal(b, want[:len(b)]) {
			t.Errorf("reset %d: %d, %d bytes, err %v", i, code, len(b), err)
		}
		t.Logf("reset %d: %d bytes then %v", i, len(b), err)
	}
	if code, b, err := f.fetch(c, p); err != nil || code != 200 || !bytes.Equal(b, want) {
		t.Errorf("after the resets: %d, %d bytes, %v", code, len(b), err)
	}

	// An orderly close after exactly n bytes: unexpected EOF.
	f.srv.CloseAfter(RouteBlock, 1, 4096)
	code, b, err := f.fetch(c, p)
	if !errors.Is(err, io.ErrUnexpectedEOF) || code != 200 || !bytes.Equal(b, want[:4096]) {
		t.Errorf("close after 4096: %d, %d bytes, err %v", code, len(b), err)
	}
	// A block shorter than afterBytes still loses its last byte.
	small := ""
	for _, id := range f.blockIDs() {
		if n := len(f.readObject("blocks", realRepo, id)); n < 100 {
			small = id
			break
		}
	}
	smallData := f.readObject("blocks", realRepo, small)
	f.srv.CloseAfter(RouteBlock, 1, 1<<20)
	code, b, err = f.fetch(c, repoPath(realRepo, "block/"+small))
	if err == nil || !bytes.Equal(b, smallData[:len(smallData)-1]) {
		t.Errorf("close of a short block: %d, %d of %d bytes, err %v", code, len(b), len(smallData), err)
	}
	// Error answers do not consume the knob.
	f.srv.ResetBlocks(1, 0)
	f.want(f.get(repoPath(realRepo, "block/"+missingID)), 500, "\n")
	if _, b, err := f.fetch(c, p); err == nil || len(b) != 0 {
		t.Errorf("reset after 0 bytes: %d bytes, %v", len(b), err)
	}
}

func TestResetNextHeadCommitsMulti(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	body := []byte(jsonList(realRepo))
	f.srv.ResetNext(RouteHeadCommitsMulti, 1)
	if _, err := f.try(f.client, http.MethodPost, "/repo/head-commits-multi/", body); err == nil {
		t.Error("no error after a reset")
	} else {
		t.Logf("reset: %v", err)
	}
	f.srv.CloseNext(RouteHeadCommitsMulti, 1)
	if _, err := f.try(f.client, http.MethodPost, "/repo/head-commits-multi/", body); err == nil {
		t.Error("no error after a close")
	}
	f.srv.FailNextStatus(RouteHeadCommitsMulti, 2, http.StatusServiceUnavailable)
	for i := 0; i < 2; i++ {
		f.want(f.do(http.MethodPost, "/repo/head-commits-multi/", body), 503, "\n")
	}
	f.want(f.do(http.MethodPost, "/repo/head-commits-multi/", body), 200, `{"`+realRepo+`":"`+realHead+`"}`)
	if n := f.srv.Requests(RouteHeadCommitsMulti); n != 5 {
		t.Errorf("Requests(head-commits-multi) = %d, want 5", n)
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	ids := jsonList(rootHead, fNotes)
	f.srv.FailNext(RoutePackFS, 3)
	for i := 0; i < 3; i++ {
		r := f.post(repoPath(realRepo, "pack-fs/"), ids)
		f.want(r, 500, "\n")
		if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	// Other routes are not affected; even a request without a token gets
	// the 500 (the storm comes before any check).
	f.want(f.get(repoPath(realRepo, "commit/HEAD")), 200, `{"is_corrupted": 0, "head_commit_id": "`+realHead+`"}`)
	if recs, err := parsePack(f.post(repoPath(realRepo, "pack-fs/"), ids).body); err != nil || len(recs) != 2 {
		t.Errorf("after the storm: %d records, %v", len(recs), err)
	}
	f.srv.FailNext(RouteAny, 2)
	f.want(f.do(http.MethodGet, "/protocol-version", nil), 500, "\n")
	f.want(f.get(repoPath(realRepo, "block/"+bigBlock)), 500, "\n")
	f.want(f.do(http.MethodGet, "/protocol-version", nil), 200, `{"version": 2}`)
	// n <= 0 cancels; ClearKnobs cancels everything.
	f.srv.FailNext(RouteBlock, 5)
	f.srv.FailNext(RouteBlock, 0)
	f.srv.FailNext(RouteCommit, 5)
	f.srv.ClearKnobs()
	if code, _, err := f.fetch(f.client, repoPath(realRepo, "block/"+bigBlock)); err != nil || code != 200 {
		t.Errorf("cancelled storm: %d %v", code, err)
	}
	if code, _, err := f.fetch(f.client, repoPath(realRepo, "commit/"+cHead)); err != nil || code != 200 {
		t.Errorf("cleared storm: %d %v", code, err)
	}
	if n := f.srv.Requests(RoutePackFS); n != 4 {
		t.Errorf("Requests(pack-fs) = %d, want 4", n)
	}
	if n := f.srv.Requests(RouteAny); n != 10 {
		t.Errorf("Requests(any) = %d, want 10", n)
	}
	f.srv.ResetRequests()
	if n := f.srv.Requests(RouteAny); n != 0 {
		t.Errorf("after ResetRequests: %d", n)
	}
}

func TestTruncatePacks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	ids := []string{rootHead, fNotes, dDir}
	f.srv.TruncatePacks(1)
	// An empty pack has nothing to cut and does not use up the knob.
	f.want(f.post(repoPath(realRepo, "pack-fs/"), "[]"), 200, "")
	r := f.post(repoPath(realRepo, "pack-fs/"), jsonList(ids...))
	if r.code != 200 || r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
		t.Fatalf("truncated pack: %d, Content-Length %q for %d bytes", r.code, r.header.Get("Content-Length"), len(r.body))
	}
	recs, err := parsePack(r.body)
	if err == nil || len(recs) != 2 {
		t.Errorf("truncated pack parsed: %d records, err %v", len(recs), err)
	}
	last := f.readObject("fs", realRepo, dDir)
	if tail := r.body[len(r.body)-len(last)/2:]; !bytes.Equal(tail, last[:len(last)/2]) || !bytes.HasSuffix(r.body[:len(r.body)-len(last)/2-4], []byte(dDir)) {
		t.Error("the cut is not in the middle of the last record's data")
	}
	if recs, err := parsePack(f.post(repoPath(realRepo, "pack-fs/"), jsonList(ids...)).body); err != nil || len(recs) != 3 {
		t.Errorf("after truncation: %d records, %v", len(recs), err)
	}
}

func TestCorruptObject(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	want := f.readObject("blocks", realRepo, bigBlock)
	p := repoPath(realRepo, "block/"+bigBlock)

	// Default corruption: same length, last byte inverted.
	f.srv.CorruptObject(bigBlock, nil)
	r := f.get(p)
	if r.code != 200 || len(r.body) != len(want) || bytes.Equal(r.body, want) || !bytes.Equal(r.body[:len(want)-1], want[:len(want)-1]) {
		t.Errorf("corrupt block: %d, %d bytes", r.code, len(r.body))
	}
	// Given content; Content-Length follows it.
	f.srv.CorruptObject(bigBlock, []byte("not the block"))
	r = f.get(p)
	f.want(r, 200, "not the block")
	if r.header.Get("Content-Length") != "13" {
		t.Errorf("Content-Length %q", r.header.Get("Content-Length"))
	}
	f.srv.RestoreObject(bigBlock)
	if r := f.get(p); !bytes.Equal(r.body, want) {
		t.Error("restored block differs")
	}

	// fs objects in pack-fs: the record carries the other bytes and their
	// length; fs-id-list (which walks the stored tree) is unaffected.
	f.srv.CorruptObject(dSub, []byte("xyz"))
	recs, err := parsePack(f.post(repoPath(realRepo, "pack-fs/"), jsonList(dDir, dSub, fDeep)).body)
	if err != nil || len(recs) != 3 || string(recs[1].data) != "xyz" || !bytes.Equal(recs[2].data, f.readObject("fs", realRepo, fDeep)) {
		t.Errorf("corrupt fs object in pack: %v", err)
	}
	f.want(f.fsIDList("server-head="+cHead+"&dir-only=1"), 200, jsonList(rootHead, dDir, dSub, dData))
	// Commits too. A missing object stays missing.
	f.srv.CorruptObject(cHead, []byte("{}"))
	f.want(f.get(repoPath(realRepo, "commit/"+cHead)), 200, "{}")
	f.srv.CorruptObject(missingID, []byte("x"))
	f.want(f.get(repoPath(realRepo, "block/"+missingID)), 500, "\n")
}

func TestTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{Prefix: "/seafhttp"})
	s := New(f.dataDir, f.db, Options{Prefix: "/seafhttp", Logf: t.Logf})
	url, err := s.StartTLS()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "https://127.0.0.1:") || !strings.HasSuffix(url, "/seafhttp") {
		t.Fatalf("URL %q", url)
	}
	pemData, err := os.ReadFile(s.CAFile())
	if err != nil || !bytes.Equal(pemData, s.CAPEM()) || !bytes.HasPrefix(pemData, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatalf("CA file: %v", err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}
	defer tr.CloseIdleConnections()
	g := &fixture{t: t, url: url, token: f.token, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	g.want(g.get("/protocol-version"), 200, `{"version": 2}`)
	g.want(g.get(repoPath(realRepo, "commit/HEAD")), 200, `{"is_corrupted": 0, "head_commit_id": "`+realHead+`"}`)
	// localhost is in the certificate too.
	g.url = strings.Replace(url, "127.0.0.1", "localhost", 1)
	g.want(g.get("/protocol-version"), 200, `{"version": 2}`)
	// Without the private CA: refused.
	if _, err := g.try(&http.Client{Transport: &http.Transport{}}, http.MethodGet, "/protocol-version", nil); err == nil {
		t.Error("a client without the private CA connected")
	}
	// Connection-level knobs work over TLS.
	g.url = url
	s.ResetBlocks(1, 1000)
	if code, b, err := g.fetch(g.client, repoPath(realRepo, "block/"+bigBlock)); err == nil || code != 200 || len(b) > 1000 {
		t.Errorf("reset over TLS: %d, %d bytes, %v", code, len(b), err)
	}
	s.CloseNext(RouteProtocolVersion, 1)
	if _, err := g.try(freshTLSClient(s), http.MethodGet, "/protocol-version", nil); err == nil {
		t.Error("no error after close over TLS")
	}
	ca := s.CAFile()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ca); !os.IsNotExist(err) {
		t.Errorf("CA file left after Close: %v", err)
	}
	if _, err := s.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func freshTLSClient(s *Server) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}
}

// TestConcurrentKnobs changes knobs while clients download; run with -race.
func TestConcurrentKnobs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{CacheTTL: time.Minute})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				f.fetch(c, repoPath(realRepo, "block/"+bigBlock))
				f.fetch(c, repoPath(realRepo, "fs-id-list/?server-head="+cHead))
			}
		}()
	}
	for i := 0; i < 20; i++ {
		f.srv.ResetBlocks(1, 100)
		f.srv.StallBlocks(1, 10, 5*time.Millisecond)
		f.srv.FailNext(RouteAny, 1)
		f.srv.CorruptObject(bigBlock, nil)
		f.srv.SetDelay(time.Millisecond)
		f.srv.ClearCaches()
		_ = f.srv.Requests(RouteAny)
		time.Sleep(5 * time.Millisecond)
		f.srv.ClearKnobs()
	}
	close(stop)
	wg.Wait()
	if f.srv.Requests(RouteBlock) == 0 {
		t.Error("no block requests")
	}
}
