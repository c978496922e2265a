package refresh_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rolecall/rolecall/cache"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/httpdoc"
)

// BenchmarkRefresh compares a poll of an unchanged HTTP upstream (one 304:
// no parse, no compile, no cache write) with a refresh that loads a changed
// document, both over real loopback HTTP with a real bbolt cache.
func BenchmarkRefresh(b *testing.B) {
	docs := []string{goodV1, strings.Replace(goodV1, "revision: v1", "revision: v1b", 1)}
	var version atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := version.Load()
		etag := `"` + string(rune('a'+v%2)) + `"`
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write([]byte(docs[v%2]))
	}))
	defer srv.Close()

	newRefresher := func(b *testing.B) *refresh.Refresher {
		db, err := cache.Open(filepath.Join(b.TempDir(), "rolecall.db"), cache.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		up, err := httpdoc.New(httpdoc.Config{URL: srv.URL + "/policy.yaml"})
		if err != nil {
			b.Fatal(err)
		}
		ref, err := refresh.New(refresh.Config{Upstream: up, Engine: &pdp.Engine{}, Cache: db})
		if err != nil {
			b.Fatal(err)
		}
		if err := ref.RefreshOnce(b.Context()); err != nil {
			b.Fatal(err)
		}
		return ref
	}

	b.Run("not-modified", func(b *testing.B) {
		ref := newRefresher(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := ref.RefreshOnce(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("changed", func(b *testing.B) {
		ref := newRefresher(b)
		b.ReportAllocs()
		for b.Loop() {
			version.Add(1)
			if err := ref.RefreshOnce(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
