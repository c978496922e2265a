// Package rctest is the in-process test server the packages' tests share:
// the bookstore example policy, and rolecall served over bufconn.
package rctest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

// BookstorePath is the path of examples/bookstore.yaml.
func BookstorePath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples", "bookstore.yaml")
}

// BookstoreSnapshot compiles the bookstore example policy.
func BookstoreSnapshot(t testing.TB) *pdp.Snapshot {
	t.Helper()
	data, err := os.ReadFile(BookstorePath())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policyfile.Compile(data, policyfile.YAML)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// Bookstore is an engine serving the bookstore example policy.
func Bookstore(t testing.TB) *pdp.Engine {
	t.Helper()
	e := &pdp.Engine{}
	e.Swap(BookstoreSnapshot(t))
	return e
}
