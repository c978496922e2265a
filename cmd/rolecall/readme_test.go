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
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// readmeExample is one "$ command" line of a console block in README.md or
// a docs/*.md page and the output shown under it. A last line "exit status N"
// is go run's report of the exit code, checked as such.
type readmeExample struct {
	file     string
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
			cur = &readmeExample{file: path, line: n, command: strings.TrimPrefix(line, "$ ")}
		case inBlock && cur != nil && strings.HasPrefix(line, "exit status "):
			cur.exitCode, err = strconv.Atoi(strings.TrimPrefix(line, "exit status "))
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
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

// TestDocExamples runs every console example of README.md and of every
// docs/*.md page against the servers the README starts (the decision server
// with the development issuers, and the development issuer) and checks that
// each prints what the page says it prints. Addresses are replaced with free
// loopback ports, and times and signing key ids (which change with every run)
// are compared as "<time>" and "<key id>". Files an example writes (a bare
// name ending in .snap or .pem) go to a directory of the page's own, so the
// examples of a page share them and the repository stays clean. Each page is
// a subtest, each example a subtest named file:line.
func TestDocExamples(t *testing.T) {
	t.Chdir("../..")
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{"README.md"}, pages...)
	byPage := make(map[string][]readmeExample, len(pages))
	total := 0
	for _, page := range pages {
		byPage[page] = readmeExamples(t, page)
		total += len(byPage[page])
	}
	if len(byPage["README.md"]) < 2 || total < 9 {
		t.Fatalf("found %d console examples in README.md and docs/ (%d in README.md); the parser or the docs are broken", total, len(byPage["README.md"]))
	}
	dir := t.TempDir()
	grpcAddr, devAddr := freeAddr(t), freeAddr(t)

	startDevIssuer(t, devAddr)

	issuers := filepath.Join(dir, "dev-issuers.yaml")
	data, err := os.ReadFile("examples/dev-issuers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(issuers, []byte(strings.ReplaceAll(string(data), devIssuerREADMEAddr, devAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, dir, "--policy", "examples/bookstore.yaml", "--grpc-addr", grpcAddr, "--issuers", issuers)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)

	rewrite := strings.NewReplacer(defaultAddr, grpcAddr, devIssuerREADMEAddr, devAddr, "examples/dev-issuers.yaml", issuers)
	for _, page := range pages {
		t.Run(page, func(t *testing.T) {
			scratch := t.TempDir()
			for _, ex := range byPage[page] {
				runDocExample(t, ex, rewrite, scratch, grpcAddr, devAddr)
			}
		})
	}
}

// scratchFile is a word of a documented command that names a file the
// example writes or reads back: a bare name ending in .snap or .pem.
var scratchFile = regexp.MustCompile(`^[\w.-]+\.(?:snap|pem)$`)

// runDocExample runs one example, as a subtest named file:line, and compares
// its output and exit code with the page's.
func runDocExample(t *testing.T, ex readmeExample, rewrite *strings.Replacer, scratch, grpcAddr, devAddr string) {
	t.Helper()
	t.Run(fmt.Sprintf("%s:%d", ex.file, ex.line), func(t *testing.T) {
		var stdin string
		var code int
		for _, stage := range strings.Split(ex.command, " | ") {
			words, err := shellWords(stage)
			if err != nil {
				t.Fatalf("%s: %v", ex.command, err)
			}
			for i, w := range words {
				if scratchFile.MatchString(w) {
					words[i] = filepath.Join(scratch, w)
					continue
				}
				words[i] = rewrite.Replace(w)
			}
			stdin, code = runREADMECommand(t, ex, words, stdin, grpcAddr, devAddr)
		}
		got := readmeKeyIDs.ReplaceAllString(readmeTimes.ReplaceAllString(strings.ReplaceAll(stdin, devAddr, devIssuerREADMEAddr), "<time>"), "<key id>")
		want := readmeKeyIDs.ReplaceAllString(readmeTimes.ReplaceAllString(ex.want, "<time>"), "<key id>")
		if code != ex.exitCode || got != want {
			t.Errorf("$ %s\nexit %d, want %d\n got:\n%s\nwant:\n%s", ex.command, code, ex.exitCode, got, want)
		}
	})
}

// devIssuerREADMEAddr is the development issuer's address in the README.
const devIssuerREADMEAddr = defaultDevIssuerAddr

var (
	readmeTimes  = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	readmeKeyIDs = regexp.MustCompile(`ed25519:[0-9a-f]{16}`)
)

// runREADMECommand runs one command of a documented example: rolecall in process
// (pointed at the test's servers), or a pinned tool with go tool.
func runREADMECommand(t *testing.T, ex readmeExample, words []string, stdin, grpcAddr, devAddr string) (string, int) {
	t.Helper()
	switch {
	case len(words) > 3 && strings.Join(words[:3], " ") == "go run ./cmd/rolecall":
		args := words[3:]
		switch {
		case (args[0] == "check" || args[0] == "who-can" || args[0] == "validate-token") && !containsFlag(args, "--policy") && !containsFlag(args, "--issuers"):
			args = append([]string{args[0], "--addr", grpcAddr}, args[1:]...)
		case len(args) > 1 && args[0] == "dev-issuer" && args[1] == "token" && !containsFlag(args, "--addr"):
			args = append([]string{"dev-issuer", "token", "--addr", devAddr}, args[2:]...)
		}
		var out, errOut bytes.Buffer
		code := run(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
		if code == exitError {
			t.Logf("stderr: %s", errOut.String())
		}
		return out.String(), code
	case len(words) > 3 && strings.Join(words[:3], " ") == "go tool -modfile=tools/go.mod":
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, words[0], words[1:]...)
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(words, " "), err, errOut.String())
		}
		return string(out), 0
	default:
		t.Fatalf("%s:%d: no way to run %q; extend TestDocExamples", ex.file, ex.line, strings.Join(words, " "))
		return "", 0
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListening waits, for at most 10 s, until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
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

// startDevIssuer runs "rolecall dev-issuer" in process on addr until the
// test ends, waits until it listens, and returns addr.
func startDevIssuer(t *testing.T, addr string) string {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &syncBuffer{}
	go func() { done <- run(ctx, []string{"dev-issuer", "--addr", addr}, strings.NewReader(""), logs, logs) }()
	t.Cleanup(func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("dev-issuer exited %d: %s", code, logs)
		}
	})
	waitListening(t, addr)
	return addr
}
