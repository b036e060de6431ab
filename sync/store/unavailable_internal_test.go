package store

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
)

// An S3 error that may pass (throttling, a server error, no answer, a stall) is the
// store's outage, ErrUnavailable, so that status tells one outage as one health
// whichever object each attempt met it at; an answer about the request is not.
func TestS3ErrorsThatMayPassAreUnavailable(t *testing.T) {
	s := &S3{endpoint: "s3.example.com"}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{minio.ErrorResponse{StatusCode: 503, Code: "SlowDown"}, true},
		{minio.ErrorResponse{StatusCode: 500, Code: "InternalError"}, true},
		{fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED), true},
		{fmt.Errorf("%w for 1m0s", ErrS3Stalled), true},
		{minio.ErrorResponse{StatusCode: 403, Code: "AccessDenied"}, false},
		{minio.ErrorResponse{StatusCode: 404, Code: "NoSuchBucket"}, false},
		{context.Canceled, false},
	} {
		err := s.errorf("put", "blocks", "k", c.err)
		if got := errors.Is(err, ErrUnavailable); got != c.want {
			t.Errorf("%v: unavailable %v, want %v", err, got, c.want)
		}
		if !errors.Is(err, c.err) && !errors.Is(err, ErrS3Stalled) {
			var er minio.ErrorResponse
			if !errors.As(err, &er) {
				t.Errorf("%v: the cause is lost", err)
			}
		}
	}
}
