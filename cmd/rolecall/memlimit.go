package main

import (
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// setMemoryLimit sets the Go memory limit to 90% of the container's cgroup
// memory limit, unless GOMEMLIMIT is set, so that the garbage collector works
// harder before the kernel's OOM killer would. root is the filesystem root.
// It returns the limit set, or 0.
func setMemoryLimit(root fs.FS) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit, ok := cgroupMemoryLimit(root)
	if !ok {
		return 0
	}
	debug.SetMemoryLimit(limit / 10 * 9)
	return limit / 10 * 9
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup: v2
// (memory.max) or v1 (memory.limit_in_bytes). "max", a missing file, or v1's
// huge "unlimited" value mean no limit.
func cgroupMemoryLimit(root fs.FS) (int64, bool) {
	for _, name := range []string{"sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := fs.ReadFile(root, name)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
