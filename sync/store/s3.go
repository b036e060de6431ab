package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"seafbak/internal/tlsutil"
	"seafbak/sync/object"
)

// S3 is a Store in Seafile's own S3 layout (what its Pro S3 backend reads): one bucket
// per kind (commits, fs, blocks), key "<store id>/<object id>" with no xx/ split, the
// stored bytes exactly the filesystem store's. A Seafile server whose seafile.conf
// points its three backends at these buckets serves the backup as it is.
//
// The filesystem store's invariants hold under S3's semantics:
//   - Atomic: a PUT (single or multipart) makes an object visible whole when it
//     completes and never partially; the client sends nothing before Commit, so Abort, a
//     killed process or a broken upload leave nothing visible.
//   - Durable: an object is durable once its PUT returned 200 (S3's contract; a server
//     that acknowledges before its disks have the data breaks it, whatever the client
//     does). Commit returns only after that, so Sync and SyncAll have nothing to flush.
//   - Never delete: nothing here deletes. So a presence answer "yes" is never stale,
//     which is what lets Preload's listing answer Has for a whole sync.
type S3 struct {
	c        *minio.Client // reads, HEADs, listings: minio-go retries them itself
	putc     *minio.Client // PUTs: one attempt each, retried by put
	attempts int
	opts     S3Options
	endpoint string // scheme://host:port, for errors

	mu    gosync.Mutex
	lists map[listKey]map[[20]byte]int64 // Preload's listings (id → size), grown by Commit
}

type listKey struct {
	kind    object.Kind
	storeID string
}

var _ Store = (*S3)(nil)

// S3Buckets names the three buckets, one per object kind, as seafile.conf's
// [commit_object_backend], [fs_object_backend] and [block_backend] do.
type S3Buckets struct {
	Commits, FS, Blocks string
}

// S3Options locates and opens an S3 store. Its String never prints the secret.
type S3Options struct {
	Endpoint  string // host[:port], no scheme (e.g. s3.eu-west-1.amazonaws.com, minio:9000)
	Region    string // optional; default us-east-1
	Buckets   S3Buckets
	PathStyle bool   // bucket in the path (most non-AWS servers), not in the host name
	TLS       bool   // https; the certificate is always verified
	CAFile    string // optional PEM bundle added to the system's roots, for a private CA
	// AccessKey and SecretKey; when empty, the AWS environment (AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and then the shared credentials file
	// (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile AWS_PROFILE) are used.
	AccessKey, SecretKey string
	// SpillDir holds objects larger than s3MemLimit until their PUT; default os.TempDir().
	SpillDir string
	// StallTimeout bounds how long a request may move no byte: the server taking none
	// of an upload, sending no header, or no byte of a body (default 60 s). A slow but
	// moving transfer is never cut off. A stalled request is retried as a reset is.
	StallTimeout time.Duration
	// MaxRetries bounds the attempts of each request (resets, 5xx, timeouts, throttling,
	// with jittered exponential backoff); 0 is minio-go's default (10).
	MaxRetries int
}

func (o S3Options) String() string {
	scheme := "http"
	if o.TLS {
		scheme = "https"
	}
	key := "from environment"
	if o.AccessKey != "" {
		key = o.AccessKey
	}
	return fmt.Sprintf("s3 %s://%s buckets %s,%s,%s (access key %s)", scheme, o.Endpoint, o.Buckets.Commits, o.Buckets.FS, o.Buckets.Blocks, key)
}

// GoString keeps %#v from printing the secret too.
func (o S3Options) GoString() string { return o.String() }

// s3MemLimit is the largest object a Writer keeps in memory; larger ones (blocks, up to
// Seafile's 8 MiB and more) go to a temp file, so memory stays bounded with many
// writers at once. Commits and fs objects are almost always under it.
const s3MemLimit = 1 << 20

// NewS3 opens the store and checks that its three buckets exist and the credentials
// are accepted, so a wrong key or bucket fails before any work with the endpoint and
// bucket named.
func NewS3(ctx context.Context, o S3Options) (*S3, error) {
	scheme := "http"
	if o.TLS {
		scheme = "https"
	}
	s := &S3{opts: o, endpoint: scheme + "://" + o.Endpoint, lists: map[listKey]map[[20]byte]int64{}}
	if o.Endpoint == "" || o.Buckets.Commits == "" || o.Buckets.FS == "" || o.Buckets.Blocks == "" {
		return nil, fmt.Errorf("s3 store: endpoint and the three buckets (commits, fs, blocks) are required")
	}
	var creds *credentials.Credentials
	switch {
	case o.AccessKey != "" && o.SecretKey != "":
		creds = credentials.NewStaticV4(o.AccessKey, o.SecretKey, "")
	case o.AccessKey != "" || o.SecretKey != "":
		return nil, fmt.Errorf("s3 store %s: access key and secret key go together", s.endpoint)
	default:
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
		})
		v, err := creds.GetWithContext(nil)
		if err != nil || v.AccessKeyID == "" {
			return nil, fmt.Errorf("s3 store %s: no credentials: set the access key and secret in the config, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials (or the file AWS_SHARED_CREDENTIALS_FILE names: under systemd, ProtectHome= hides ~/.aws)", s.endpoint)
		}
	}
	tr, err := minio.DefaultTransport(o.TLS)
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", s.endpoint, err)
	}
	if o.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if err := tlsutil.AddCA(pool, o.CAFile); err != nil {
			return nil, fmt.Errorf("s3 store %s: %w", s.endpoint, err)
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	stall := o.StallTimeout
	if stall <= 0 {
		stall = s3StallTimeout
	}
	// The stall clock bounds the wait for headers too, and says what happened by name.
	tr.ResponseHeaderTimeout = 0
	lookup := minio.BucketLookupDNS
	if o.PathStyle {
		lookup = minio.BucketLookupPath
	}
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	mo := minio.Options{
		Creds:        creds,
		Secure:       o.TLS,
		Transport:    &s3Answers{rt: &stallTransport{rt: tr, limit: stall}},
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   o.MaxRetries,
	}
	s.c, err = minio.New(o.Endpoint, &mo)
	if err == nil {
		mo.MaxRetries = 1
		s.putc, err = minio.New(o.Endpoint, &mo)
	}
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", s.endpoint, err)
	}
	s.attempts = o.MaxRetries
	if s.attempts <= 0 {
		s.attempts = minio.MaxRetry
	}
	// A one-key listing of each bucket: it needs the permission HasLibrary and Preload
	// need, and unlike a HEAD its error has a body saying what is wrong.
	for _, b := range []string{o.Buckets.Commits, o.Buckets.FS, o.Buckets.Blocks} {
		if err := s.probe(ctx, b); err != nil {
			if minio.ToErrorResponse(err).Code == "NoSuchBucket" {
				return nil, fmt.Errorf("s3 store %s: bucket %s does not exist (seafbak does not create buckets: make the three with the server's tools)", s.endpoint, b)
			}
			return nil, fmt.Errorf("s3 store %s: bucket %s: %w", s.endpoint, b, s3Cause(err))
		}
	}
	return s, nil
}

func (s *S3) probe(ctx context.Context, bucket string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for o := range s.c.ListObjects(ctx, bucket, minio.ListObjectsOptions{MaxKeys: 1}) {
		return o.Err
	}
	return nil
}

func (s *S3) String() string { return s.opts.String() }

// s3Cause makes an S3 error readable: minio-go's ErrorResponse prints only its message
// ("Access Denied."), which hides the code an admin searches for. The answer stays in
// the chain (errors.As finds the minio.ErrorResponse), for main's hints.
func s3Cause(err error) error {
	var er minio.ErrorResponse
	if errors.As(err, &er) && er.Code != "" {
		msg := er.Message
		if er.Code == "NoSuchBucket" {
			// A HEAD's 404 has no body: minio-go words it as NoSuchKey's, and a code in
			// a header (MinIO's) then says the bucket is what is missing.
			msg = "The specified bucket does not exist."
		}
		return &s3Answer{text: fmt.Sprintf("%s (%s, HTTP %d)", msg, er.Code, er.StatusCode), err: err}
	}
	return err
}

// s3Answer is an error the S3 server answered, printed with its code and status.
type s3Answer struct {
	text string
	err  error
}

func (e *s3Answer) Error() string { return e.text }
func (e *s3Answer) Unwrap() error { return e.err }

func (s *S3) bucket(kind object.Kind) string {
	switch kind {
	case object.KindCommit:
		return s.opts.Buckets.Commits
	case object.KindFS:
		return s.opts.Buckets.FS
	}
	return s.opts.Buckets.Blocks
}

// key builds a key only from a checked kind, library id and object id.
func (s *S3) key(kind object.Kind, storeID, id string) (bucket, key string, err error) {
	if !kind.Valid() {
		return "", "", fmt.Errorf("s3 store: unknown object kind %q", kind)
	}
	if err := object.CheckRepoID(storeID); err != nil {
		return "", "", fmt.Errorf("s3 store: %w", err)
	}
	if id != "" {
		if err := object.CheckID(id); err != nil {
			return "", "", fmt.Errorf("s3 store: %w", err)
		}
	}
	return s.bucket(kind), storeID + "/" + id, nil
}

func (s *S3) errorf(op, bucket, key string, err error) error {
	e := fmt.Errorf("s3 store %s: %s %s/%s: %w", s.endpoint, op, bucket, key, s3Cause(err))
	if errors.Is(err, ErrS3Stalled) || errors.Is(err, ErrS3BadAnswer) || !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && retryable(err) {
		return &unavailable{e}
	}
	return e
}

// unavailable is an S3 error that matches ErrUnavailable.
type unavailable struct{ error }

func (u *unavailable) Unwrap() []error { return []error{u.error, ErrUnavailable} }

// isNoSuchKey says whether an S3 error answers that the object does not exist. Only
// NoSuchKey says so: a 404 may also be NoSuchBucket (a bucket deleted or misnamed
// since the store opened), or come from something in front that is no S3 server;
// taken for "absent" they had verify report every object missing and a sync upload
// into nowhere. minio-go gives a 404 without an S3 error document NoSuchKey too (a
// HEAD's never has one), so a GET's is checked with an a404Note.
func isNoSuchKey(err error) bool {
	er := minio.ToErrorResponse(err)
	return er.StatusCode == http.StatusNotFound && er.Code == "NoSuchKey"
}

// a404Note, in a request's context, is told by s3Answers whether a 404 answer to it
// was an S3 error document.
type a404Note struct{ s3 atomic.Bool }

type a404NoteKey struct{}

func with404Note(ctx context.Context) (context.Context, *a404Note) {
	n := &a404Note{}
	return context.WithValue(ctx, a404NoteKey{}, n), n
}

// s3Answers checks what minio-go takes on trust. Every request seafbak sends is
// answered 200 when it succeeds (a DELETE, aborting a multipart upload, 204); minio-go
// takes any 2xx as success, so a 202 or 206 (a gateway that queues, a proxy's partial
// answer) was a PUT acknowledged that stored nothing, a GET with no body, an empty
// listing. Such an answer becomes a 502 naming it, which minio-go retries and seafbak
// classes as the store unavailable. A listing's body is bounded (maxListingBytes). The
// body of a 404 to a request that carries an a404Note is read (bounded: an error
// document is small) to tell it whether the answer was an S3 error document with a
// code, and handed on for minio-go to read.
type s3Answers struct{ rt http.RoundTripper }

// maxListingBytes bounds a listing's answer: a page of 1000 keys is under 2 MiB.
const maxListingBytes = 8 << 20

func (t *s3Answers) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode/100 == 2 && resp.StatusCode != http.StatusOK && !(req.Method == http.MethodDelete && resp.StatusCode == http.StatusNoContent) {
		resp.Body.Close()
		msg := fmt.Sprintf("the S3 server answered %s to a %s, not 200: nothing it says can be taken as done", resp.Status, req.Method)
		var doc bytes.Buffer
		xml.EscapeText(&doc, []byte(msg))
		body := "<Error><Code>UnexpectedSuccessStatus</Code><Message>" + doc.String() + "</Message></Error>"
		resp.StatusCode, resp.Status = http.StatusBadGateway, "502 Bad Gateway"
		resp.Header = http.Header{"Content-Type": {"application/xml"}}
		resp.Body, resp.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
		return resp, nil
	}
	if req.Method == http.MethodGet && req.URL.Query().Has("list-type") {
		resp.Body = &boundedBody{ReadCloser: resp.Body, left: maxListingBytes}
	}
	note, _ := req.Context().Value(a404NoteKey{}).(*a404Note)
	if note == nil || resp.StatusCode != http.StatusNotFound {
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	var doc struct {
		XMLName xml.Name `xml:"Error"`
		Code    string
	}
	note.s3.Store(xml.Unmarshal(body, &doc) == nil && doc.Code != "")
	resp.Body = struct {
		io.Reader
		io.Closer
	}{bytes.NewReader(body), resp.Body}
	return resp, nil
}

// boundedBody fails a read past its first left bytes.
type boundedBody struct {
	io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("the S3 server's listing goes on past %d bytes: %w", maxListingBytes, ErrS3BadAnswer)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// ErrS3BadAnswer is an answer of the S3 server that cannot be what it claims (a size
// below zero or past any object's, a listing without end): the store's, never the
// primary's, and classed as the store unavailable.
var ErrS3BadAnswer = errors.New("the S3 server's answer cannot be right")

// checkedSize is an object's size as the S3 server gave it, refused when no object of
// kind can have it.
func checkedSize(kind object.Kind, size int64) error {
	if size < 0 || size > object.MaxStoredSize(kind) {
		return fmt.Errorf("%w: a %s of %d bytes", ErrS3BadAnswer, kind, size)
	}
	return nil
}

// Preload lists every object of kind under storeID once (ListObjectsV2, 1000 keys and
// their sizes a request), so that Has and Size answer from memory for the rest of the
// store's life instead of one HEAD per object. Objects this store commits afterwards
// are added. Objects another process writes meanwhile are not: a sync then sees them
// absent and writes them again, which is redundant but harmless (same key, same
// bytes); a "present" is never wrong, since nothing deletes. So Preload is for a
// sync, which acts on "absent" by writing; verify and restore, which would report it,
// should not use it. Worth it when a sync checks more than a fraction of the library's
// objects (BenchmarkS3Presence: the break-even).
func (s *S3) Preload(ctx context.Context, kind object.Kind, storeID string) error {
	bucket, prefix, err := s.key(kind, storeID, "")
	if err != nil {
		return err
	}
	set := map[[20]byte]int64{}
	var sizeErr error
	err = s.list(ctx, bucket, prefix, listPageKeys, func(rest string, size int64) bool {
		// Keys under the prefix that are not "<store>/<40 lower-case hex>" are someone
		// else's; they are no object. ("ABCD..." decodes as hex too, and would answer
		// for "abcd...": a sync would then skip writing the object a directory above it
		// needs.)
		if bin, ok := object.BinaryID(rest); ok {
			if sizeErr = checkedSize(kind, size); sizeErr != nil {
				return false
			}
			set[bin] = size
		}
		return true
	})
	if err == nil && sizeErr != nil {
		err = s.errorf("list", bucket, prefix, sizeErr)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lists[listKey{kind, storeID}] = set
	s.mu.Unlock()
	return nil
}

// list hands each key under prefix (without the prefix) and its size to each, in
// order, until each returns false; pageKeys keys a request.
//
// Paged here rather than by minio-go's ListObjects, which follows whatever
// continuation token the server hands back: one that repeats its token lists the same
// page forever. S3 lists keys in lexicographic order, so every key must come after the
// one before it, across pages too; a truncated page without a key (or without a
// token) cannot move the listing on either. A key outside the prefix asked for is the
// server ignoring the prefix (or answering for another library): nothing in such a
// listing can be trusted to say what this library holds, and counting another
// library's key as present would make a sync skip an object a directory above it
// needs.
func (s *S3) list(ctx context.Context, bucket, prefix string, pageKeys int, each func(rest string, size int64) bool) error {
	var token, last string
	for {
		page, err := s.listPage(ctx, bucket, prefix, token, pageKeys)
		if err != nil {
			return s.errorf("list", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			rest, ok := strings.CutPrefix(o.Key, prefix)
			if !ok {
				return fmt.Errorf("s3 store %s: list %s/%s: the server answered key %q, which is not under the prefix asked for: its listings cannot be trusted", s.endpoint, bucket, prefix, o.Key)
			}
			if o.Key <= last {
				return fmt.Errorf("s3 store %s: list %s/%s: the server answered key %q not after %q: S3 lists in order, so its listing is going round (a continuation token it repeats?) and cannot be trusted", s.endpoint, bucket, prefix, o.Key, last)
			}
			last = o.Key
			if !each(rest, o.Size) {
				return nil
			}
		}
		if !page.IsTruncated {
			return nil
		}
		if len(page.Contents) == 0 || page.NextContinuationToken == "" {
			return fmt.Errorf("s3 store %s: list %s/%s: the server answered a truncated page with no key or no continuation token after %q: its listing cannot move on", s.endpoint, bucket, prefix, last)
		}
		token = page.NextContinuationToken
	}
}

// listPageKeys is how many keys a listing request asks for: S3's most. Tests lower it
// to page through few objects.
var listPageKeys = 1000

// listPage is one ListObjectsV2 request (maxKeys keys at most, no delimiter: every key
// under prefix). minio-go's Core takes no context, so it runs on its own and is given up
// when ctx ends; the transport's stall clock and minio-go's bounded retries end it soon
// after.
func (s *S3) listPage(ctx context.Context, bucket, prefix, token string, maxKeys int) (minio.ListBucketV2Result, error) {
	if err := ctx.Err(); err != nil {
		return minio.ListBucketV2Result{}, err
	}
	type answer struct {
		page minio.ListBucketV2Result
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		page, err := minio.Core{Client: s.c}.ListObjectsV2(bucket, prefix, "", token, "", maxKeys)
		done <- answer{page, err}
	}()
	select {
	case <-ctx.Done():
		return minio.ListBucketV2Result{}, ctx.Err()
	case a := <-done:
		return a.page, a.err
	}
}

// DurableOnCommit is true: Commit returns once the PUT returned 200.
func (s *S3) DurableOnCommit() bool { return true }

// Forget drops Preload's listing of a library: Has and Size go back to HEADs for it.
func (s *S3) Forget(kind object.Kind, storeID string) {
	s.mu.Lock()
	delete(s.lists, listKey{kind, storeID})
	s.mu.Unlock()
}

var _ Preloader = (*S3)(nil)

// listed answers from Preload's listing: known is false when no listing of the
// object's library was loaded.
func (s *S3) listed(kind object.Kind, storeID, id string) (size int64, present, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := s.lists[listKey{kind, storeID}]
	if !ok {
		return 0, false, false
	}
	var b [20]byte
	hex.Decode(b[:], []byte(id))
	size, present = set[b]
	return size, present, true
}

func (s *S3) added(kind object.Kind, storeID, id string, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set, ok := s.lists[listKey{kind, storeID}]; ok {
		var b [20]byte
		hex.Decode(b[:], []byte(id))
		set[b] = size
	}
}

// Has answers from Preload's listing when there is one, else with a HEAD; never a GET.
func (s *S3) Has(ctx context.Context, kind object.Kind, storeID, id string) (bool, error) {
	if _, _, err := s.key(kind, storeID, id); err != nil {
		return false, err
	}
	_, err := s.Size(ctx, kind, storeID, id)
	if errors.Is(err, ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// HasLibrary asks for one key under the library's prefix (ListObjectsV2, max-keys 1),
// through the checks Preload's listing goes through.
func (s *S3) HasLibrary(ctx context.Context, kind object.Kind, storeID string) (bool, error) {
	bucket, prefix, err := s.key(kind, storeID, "")
	if err != nil {
		return false, err
	}
	has := false
	err = s.list(ctx, bucket, prefix, 1, func(string, int64) bool {
		has = true
		return false
	})
	return has && err == nil, err
}

// Size answers from Preload's listing when there is one, else with a HEAD.
func (s *S3) Size(ctx context.Context, kind object.Kind, storeID, id string) (int64, error) {
	bucket, key, err := s.key(kind, storeID, id)
	if err != nil {
		return 0, err
	}
	if size, present, known := s.listed(kind, storeID, id); known {
		if !present {
			return 0, fmt.Errorf("%s %s: %w", kind, id, ErrNotExist)
		}
		return size, nil
	}
	info, err := s.c.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if isNoSuchKey(err) {
		return 0, fmt.Errorf("%s %s: %w", kind, id, ErrNotExist)
	}
	if err != nil {
		return 0, s.errorf("head", bucket, key, err)
	}
	if err := checkedSize(kind, info.Size); err != nil { // -1: no Content-Length
		return 0, s.errorf("head", bucket, key, err)
	}
	return info.Size, nil
}

// Get reads a commit or fs object whole; the size the GET announces is checked before
// any byte is read, and the read is bounded anyway.
func (s *S3) Get(ctx context.Context, kind object.Kind, storeID, id string) ([]byte, error) {
	r, err := s.open(ctx, kind, storeID, id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	limit := object.MaxStoredSize(kind)
	if r.size > limit {
		return nil, fmt.Errorf("s3 store: %s %s: %w: larger than %d bytes", kind, id, object.ErrInvalid, limit)
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err // the store's failure, said by r
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("s3 store: %s %s: %w: larger than %d bytes", kind, id, object.ErrInvalid, limit)
	}
	return data, nil
}

// Open streams an object with one GET.
func (s *S3) Open(ctx context.Context, kind object.Kind, storeID, id string) (io.ReadCloser, error) {
	return s.open(ctx, kind, storeID, id)
}

type s3Reader struct {
	io.ReadCloser
	s           *S3
	bucket, key string
	size        int64
}

// Read fails as the store's failure: a body cut or stalled midway is the store
// unavailable, not an object damaged.
func (r *s3Reader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.errorf("get", r.bucket, r.key, err)
	}
	return n, err
}

// open sends the GET now, so a missing object is ErrNotExist here and not at the first
// Read. It goes through minio.Core: minio.Client.GetObject's Stat before any Read sent
// a HEAD and then, at the first Read, the GET: two requests an object, three with Has.
// The body's length is the response's Content-Length: a body cut short fails the read
// (io.ErrUnexpectedEOF), and callers check every object's hash anyway.
func (s *S3) open(ctx context.Context, kind object.Kind, storeID, id string) (*s3Reader, error) {
	bucket, key, err := s.key(kind, storeID, id)
	if err != nil {
		return nil, err
	}
	ctx, note := with404Note(ctx)
	body, info, _, err := minio.Core{Client: s.c}.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		switch {
		case isNoSuchKey(err) && note.s3.Load():
			return nil, fmt.Errorf("%s %s: %w", kind, id, ErrNotExist)
		case isNoSuchKey(err):
			return nil, fmt.Errorf("s3 store %s: get %s/%s: HTTP 404 without an S3 error document: is something other than the S3 server answering at this endpoint?", s.endpoint, bucket, key)
		}
		return nil, s.errorf("get", bucket, key, err)
	}
	if body == nil { // minio-go's answer to a success without a body
		return nil, s.errorf("get", bucket, key, fmt.Errorf("%w: no body", ErrS3BadAnswer))
	}
	return &s3Reader{ReadCloser: body, s: s, bucket: bucket, key: key, size: info.Size}, nil
}

// Create buffers the object (in memory, then in a temp file past s3MemLimit); Commit
// PUTs it with its length known, Abort drops it. Nothing reaches the server before
// Commit, so no partial object can ever be visible.
func (s *S3) Create(ctx context.Context, kind object.Kind, storeID, id string) (Writer, error) {
	bucket, key, err := s.key(kind, storeID, id)
	if err != nil {
		return nil, err
	}
	return &s3Writer{s: s, ctx: ctx, kind: kind, storeID: storeID, id: id, bucket: bucket, key: key}, nil
}

// Sync has nothing to do: every Commit that returned was a PUT the server acknowledged,
// and an acknowledged PUT is durable.
func (s *S3) Sync(context.Context) error { return nil }

// SyncAll has nothing to do either: another process's object is visible here only once
// its PUT completed, and then it is durable, so whatever a sync trusts as present is.
func (s *S3) SyncAll(context.Context) error { return nil }

type s3Writer struct {
	s           *S3
	ctx         context.Context
	kind        object.Kind
	storeID, id string
	bucket, key string
	buf         bytes.Buffer
	spill       *os.File // past s3MemLimit: the whole object, buf emptied into it
	size        int64
	done        bool
	writeErr    error
}

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("s3 store: write after commit or abort")
	}
	if w.writeErr != nil {
		return 0, w.writeErr
	}
	if w.spill == nil && int64(w.buf.Len()+len(p)) > s3MemLimit {
		f, err := os.CreateTemp(w.s.opts.SpillDir, "seafbak-s3-"+w.id+".*")
		if err == nil {
			// Unlinked at once: a killed process leaves no temp file behind.
			os.Remove(f.Name())
			_, err = f.Write(w.buf.Bytes())
		}
		if err != nil {
			w.writeErr = fmt.Errorf("s3 store: spill %s %s to a temp file: %w", w.kind, w.id, err)
			if f != nil {
				f.Close()
			}
			return 0, w.writeErr
		}
		w.spill = f
		w.buf = bytes.Buffer{}
	}
	var n int
	var err error
	if w.spill != nil {
		n, err = w.spill.Write(p)
		if err != nil {
			w.writeErr = fmt.Errorf("s3 store: spill %s %s: %w", w.kind, w.id, err)
			err = w.writeErr
		}
	} else {
		n, err = w.buf.Write(p)
	}
	w.size += int64(n)
	return n, err
}

// Commit PUTs the object and returns once the server acknowledged it (durable). The
// reader is seekable, so minio-go can resend the body on a retry. If the answer is
// lost after the upload (a reset, a 5xx from a proxy), Commit fails although the object
// may be stored: it is then whole, and the caller's next attempt rewrites it, which
// is idempotent since the key names the content.
func (w *s3Writer) Commit() error {
	if w.done {
		return errors.New("s3 store: object committed twice")
	}
	if w.writeErr != nil {
		w.Abort()
		return w.writeErr
	}
	w.done = true
	var body io.ReaderAt = bytes.NewReader(w.buf.Bytes())
	if w.spill != nil {
		defer w.spill.Close()
		body = w.spill
	}
	err := w.s.put(w.ctx, w.bucket, w.key, body, w.size)
	w.buf = bytes.Buffer{}
	if err != nil {
		return w.s.errorf("put", w.bucket, w.key, err)
	}
	w.s.added(w.kind, w.storeID, w.id, w.size)
	return nil
}

// put PUTs body, retrying what retryable says may go away, with jittered exponential
// backoff (200 ms doubling, at most 1 s apart, as minio-go does; at most 10 s when the
// server asks to slow down, which a quick retry only adds to) but with a fresh reader
// per attempt: minio-go's own retry rewinds the reader it was given while net/http may
// still be reading it for the failed attempt (the race detector caught it when the
// server was killed mid-upload), which could send a retry garbled bytes.
func (s *S3) put(ctx context.Context, bucket, key string, body io.ReaderAt, size int64) error {
	for attempt := 1; ; attempt++ {
		// SendContentMd5: the server checks what it stores against what was sent, over
		// HTTPS (where the payload is not signed) too.
		_, err := s.putc.PutObject(ctx, bucket, key, io.NewSectionReader(body, 0, size), size, minio.PutObjectOptions{
			ContentType:    "application/octet-stream",
			SendContentMd5: true,
		})
		if err == nil || attempt >= s.attempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		limit := time.Second
		if throttled(minio.ToErrorResponse(err)) {
			limit = 10 * time.Second
		}
		wait := min(200*time.Millisecond<<(attempt-1), limit)
		wait = wait/2 + rand.N(wait/2)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// retryable is an S3 answer that may go away (throttling, a timeout, a server error) or
// no answer at all (refused, reset); any other answer says the request itself is wrong,
// and sending it again changes nothing. The codes and statuses are those minio-go
// retries its own requests on (its retry.go), so a PUT is retried on what a read is.
func retryable(err error) bool {
	er := minio.ToErrorResponse(err)
	switch {
	case throttled(er):
		return true
	case er.StatusCode >= 500 && er.StatusCode != http.StatusNotImplemented:
		return true
	case er.StatusCode == http.StatusRequestTimeout, er.StatusCode == 499: // 499: nginx's "client closed request"
		return true
	}
	switch er.Code {
	case "RequestError", "RequestTimeout", "InternalError":
		return true
	case "ExpiredToken", "ExpiredTokenException": // temporary credentials, fetched again for the next request
		return true
	}
	return er.StatusCode == 0 && er.Code == ""
}

// throttled is an answer asking to slow down: by status, or by the code each service
// names it with (AWS, Ceph RGW, Wasabi, Backblaze, MinIO), whatever status it comes with.
func throttled(er minio.ErrorResponse) bool {
	if er.StatusCode == http.StatusTooManyRequests || er.StatusCode == http.StatusServiceUnavailable {
		return true
	}
	switch er.Code {
	case "SlowDown", "SlowDownWrite", "SlowDownRead", "Throttling", "ThrottlingException",
		"RequestLimitExceeded", "RequestThrottled", "TooManyRequests":
		return true
	}
	return false
}

func (w *s3Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.buf = bytes.Buffer{}
	if w.spill != nil {
		w.spill.Close()
	}
}

// SeafileConf is the seafile.conf sections that point a Seafile server at this store.
func (s *S3) SeafileConf() string { return s.opts.SeafileConf() }

// SeafileConf is the seafile.conf sections that make a Seafile server read this store
// ([commit_object_backend], [fs_object_backend], [block_backend]), for a failover to
// print. The secret is never printed: a placeholder stands for it.
func (o S3Options) SeafileConf() string {
	var b strings.Builder
	keyID := o.AccessKey
	if keyID == "" {
		keyID = "<access key id>"
	}
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	for _, sec := range []struct{ name, bucket string }{
		{"commit_object_backend", o.Buckets.Commits},
		{"fs_object_backend", o.Buckets.FS},
		{"block_backend", o.Buckets.Blocks},
	} {
		fmt.Fprintf(&b, "[%s]\nname = s3\nbucket = %s\nkey_id = %s\nkey = <secret key>\nhost = %s\nuse_https = %t\npath_style_request = %t\naws_region = %s\nuse_v4_signature = true\n\n",
			sec.name, sec.bucket, keyID, o.Endpoint, o.TLS, o.PathStyle, region)
	}
	if o.CAFile != "" {
		fmt.Fprintf(&b, "# Seafile verifies the endpoint against the system's CAs: add %s to them.\n", o.CAFile)
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}
