package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at build time with -ldflags "-X main.Version=v1.2.3"; builds
// from a module version report that instead.
var Version = "dev"

func version(_ context.Context, args []string, sio stdio) error {
	fs := newFlags("version", "version", "Print the version of rolecall and of the Go toolchain that built it.", "  rolecall version", sio.err)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	_, err := fmt.Fprintf(sio.out, "rolecall %s (%s %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
