package refresh

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// DefaultMaxBytes bounds a fetched policy document.
const DefaultMaxBytes = 64 << 20

// RetryAfterError is a fetch failure the server asked to retry after Wait
// (503 or 429 with Retry-After).
type RetryAfterError struct {
	Status int
	Wait   time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%d %s; retry after %v", e.Status, http.StatusText(e.Status), e.Wait)
}

// ReadSecret reads a secret from file or, when file is empty, from the
// environment variable env, trimmed of white space. Errors say where it was
// looked for, never what was found.
func ReadSecret(file, env string) (string, error) {
	var v string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		v = string(b)
	} else {
		var ok bool
		if v, ok = os.LookupEnv(env); !ok {
			return "", fmt.Errorf("environment variable %s is not set", env)
		}
	}
	v = strings.TrimSpace(v)
	if v == "" {
		if file != "" {
			return "", fmt.Errorf("%s is empty", file)
		}
		return "", fmt.Errorf("environment variable %s is empty", env)
	}
	return v, nil
}
