package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// readmeExample is one "$ command" line of a console block in README.md and
// the output shown under it. A last line "exit status N" is go run's report
// of the exit code, checked as such.
type readmeExample struct {
	line     int
	command  string
	want     string
	exitCode int
}

func readmeExamples(t *testing.T, path string) []readmeExample {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		examples []readmeExample
		cur      *readmeExample
		inBlock  bool
		n        int
	)
	flush := func() {
		if cur != nil {
			examples = append(examples, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case line == "```console":
			inBlock = true
		case inBlock && line == "```":
			flush()
			inBlock = false
		case inBlock && strings.HasPrefix(line, "$ "):
			flush()
			cur = &readmeExample{line: n, command: strings.TrimPrefix(line, "$ ")}
		case inBlock && cur != nil && strings.HasPrefix(line, "exit status "):
			cur.exitCode, err = strconv.Atoi(strings.TrimPrefix(line, "exit status "))
			if err != nil {
				t.Fatalf("README.md:%d: %v", n, err)
			}
		case inBlock && cur != nil:
			cur.want += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return examples
}

// shellWords splits a command line the way a POSIX shell would for the
// quoting the README uses: single quotes, double quotes and plain words.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case '\'', '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// TestREADMEExamples runs every console example of the README against a
// server started as the quick start starts it, and checks that each prints
// what the README says it prints.
func TestREADMEExamples(t *testing.T) {
	t.Chdir("../..")
	examples := readmeExamples(t, "README.md")
	if len(examples) < 6 {
		t.Fatalf("found %d console examples in README.md; the parser or the README is broken", len(examples))
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	dir := t.TempDir()
	d := startServe(t, dir, "--policy", "examples/bookstore.yaml", "--grpc-addr", addr)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)

	for _, ex := range examples {
		t.Run(fmt.Sprintf("README.md:%d", ex.line), func(t *testing.T) {
			words, err := shellWords(ex.command)
			if err != nil {
				t.Fatalf("%s: %v", ex.command, err)
			}
			for i, w := range words {
				words[i] = strings.ReplaceAll(w, defaultAddr, addr)
			}
			var got string
			var code int
			switch {
			case len(words) > 3 && strings.Join(words[:3], " ") == "go run ./cmd/rolecall":
				args := words[3:]
				if args[0] == "check" && !containsFlag(args, "--policy") {
					args = append([]string{"check", "--addr", addr}, args[1:]...)
				}
				var out, errOut bytes.Buffer
				code = run(t.Context(), args, strings.NewReader(""), &out, &errOut)
				got = out.String()
				if code == exitError {
					t.Logf("stderr: %s", errOut.String())
				}
			case len(words) > 3 && strings.Join(words[:3], " ") == "go tool -modfile=tools/go.mod":
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, words[0], words[1:]...)
				var errOut bytes.Buffer
				cmd.Stderr = &errOut
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s: %v\n%s", ex.command, err, errOut.String())
				}
				got = string(out)
			default:
				t.Fatalf("README.md:%d: no way to run %q; extend TestREADMEExamples", ex.line, ex.command)
			}
			if code != ex.exitCode || got != ex.want {
				t.Errorf("$ %s\nexit %d, want %d\n got:\n%s\nwant:\n%s", ex.command, code, ex.exitCode, got, ex.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "rolecall.db")); err != nil {
		t.Errorf("the server kept no cache: %v", err)
	}
}

func containsFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}
