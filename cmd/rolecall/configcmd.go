package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/rolecall/rolecall/config"
)

const configUsage = `Usage: rolecall config <subcommand>

Subcommands:
  check FILE   validate a config file and print every problem
`

func configCmd(_ context.Context, args []string, sio stdio) error {
	if len(args) == 0 {
		fmt.Fprint(sio.err, configUsage)
		return &exitErr{code: exitError, err: errSilent}
	}
	switch args[0] {
	case "check":
		return configCheck(args[1:], sio)
	case "-h", "--help", "help":
		fmt.Fprint(sio.out, configUsage)
		return nil
	default:
		fmt.Fprint(sio.err, configUsage)
		return usageError("unknown subcommand %q", args[0])
	}
}

func configCheck(args []string, sio stdio) error {
	fs := newFlags("config check", "config check FILE",
		`Validate a config file exactly as "rolecall serve --config FILE" would: strict
decoding (an unknown key is an error naming its line) and every setting checked,
with all problems listed. Exit code: 0 valid, 1 problems, 2 unreadable.`,
		`  rolecall config check examples/rolecall.yaml`, sio.err)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("name one config file")
	}
	path := fs.Arg(0)
	cfg := config.Default()
	// Load errors name the file and line already; validation problems name
	// the key, so they get the file.
	prefix := ""
	err := cfg.LoadFile(path)
	if err == nil {
		prefix = path + ": "
		err = cfg.Validate()
	}
	if err == nil {
		_, err = fmt.Fprintf(sio.out, "%s: ok\n", path)
		return err
	}
	problems := []error{err}
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		problems = joined.Unwrap()
	}
	for _, p := range problems {
		fmt.Fprintf(sio.out, "%s%v\n", prefix, p)
	}
	return &exitErr{code: exitDeny, err: errSilent}
}
