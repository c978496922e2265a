package fetch_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/internal/fetch"
)

func TestDoDecodesGzipSendsTheUserAgentAndBoundsTheBody(t *testing.T) {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write([]byte("hello, policy"))
	_ = zw.Close()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ua := r.Header.Get("User-Agent"); ua != fetch.UserAgent {
			t.Errorf("User-Agent = %q, want %q", ua, fetch.UserAgent)
		}
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(zipped.Bytes())
	}))
	defer ts.Close()

	get := func(limit int64) ([]byte, error) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL, nil)
		_, data, err := fetch.Do(ts.Client(), req, limit)
		return data, err
	}
	if data, err := get(1 << 10); err != nil || string(data) != "hello, policy" {
		t.Errorf("Do = %q, %v; want the decoded body", data, err)
	}
	if _, err := get(5); !errors.Is(err, fetch.ErrTooLarge) {
		t.Errorf("Do over the limit = %v, want ErrTooLarge", err)
	}
}

func TestRetryAfterOn429And503Only(t *testing.T) {
	for _, tt := range []struct {
		status int
		header string
		want   time.Duration // 0: no RetryAfterError
	}{
		{http.StatusTooManyRequests, "7", 7 * time.Second},
		{http.StatusServiceUnavailable, "2", 2 * time.Second},
		{http.StatusServiceUnavailable, "", 0},
		{http.StatusInternalServerError, "7", 0},
	} {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
		if tt.header != "" {
			resp.Header.Set("Retry-After", tt.header)
		}
		var ra *refresh.RetryAfterError
		err := fetch.RetryAfter(resp)
		switch {
		case tt.want == 0 && err != nil:
			t.Errorf("%d %q: RetryAfter = %v, want nil", tt.status, tt.header, err)
		case tt.want != 0 && (!errors.As(err, &ra) || ra.Wait != tt.want):
			t.Errorf("%d %q: RetryAfter = %v, want a wait of %v", tt.status, tt.header, err, tt.want)
		}
	}
}
