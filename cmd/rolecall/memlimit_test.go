package main

import (
	"testing"
	"testing/fstest"
)

func TestCgroupMemoryLimit(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  int64
		ok    bool
	}{
		{"cgroup v2 limit", fstest.MapFS{"sys/fs/cgroup/memory.max": {Data: []byte("268435456\n")}}, 268435456, true},
		{"cgroup v2 without limit", fstest.MapFS{"sys/fs/cgroup/memory.max": {Data: []byte("max\n")}}, 0, false},
		{"cgroup v1 limit", fstest.MapFS{"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("536870912")}}, 536870912, true},
		{"cgroup v1 unlimited", fstest.MapFS{"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712")}}, 0, false},
		{"no cgroup", fstest.MapFS{}, 0, false},
		{"garbage", fstest.MapFS{"sys/fs/cgroup/memory.max": {Data: []byte("lots")}}, 0, false},
	}
	for _, tt := range tests {
		got, ok := cgroupMemoryLimit(tt.files)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: %d, %v; want %d, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
