package policytest

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

// The JUnit XML report, in the shape GitLab, Jenkins and GitHub's test
// reporters read: a testsuite per suite file, a testcase per case.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name      string      `xml:"name,attr"`
		Tests     int         `xml:"tests,attr"`
		Failures  int         `xml:"failures,attr"`
		Errors    int         `xml:"errors,attr"`
		Skipped   int         `xml:"skipped,attr"`
		Time      string      `xml:"time,attr"`
		Timestamp string      `xml:"timestamp,attr"`
		Cases     []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      string        `xml:"time,attr"`
		Failure   *junitProblem `xml:"failure"`
		Error     *junitProblem `xml:"error"`
	}
	junitProblem struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
)

// JUnit renders results as a JUnit XML report, started at start. A failed
// case is a failure; a case of a suite whose policy did not compile is an
// error (it could not be decided), with the policy's problems.
func JUnit(results []Result, start time.Time) ([]byte, error) {
	var doc junitSuites
	var total time.Duration
	for _, r := range results {
		s := junitSuite{
			Name:      r.Suite.Path,
			Tests:     len(r.Cases),
			Time:      seconds(r.Elapsed),
			Timestamp: start.UTC().Format("2006-01-02T15:04:05"),
		}
		for _, c := range r.Cases {
			jc := junitCase{Name: c.Name, Classname: r.Suite.Path, Time: seconds(c.Elapsed)}
			switch {
			case c.Failure == "":
			case r.PolicyProblems != nil:
				s.Errors++
				jc.Error = &junitProblem{Message: "the policy does not compile", Type: "PolicyError", Text: dedent(c.Failure)}
			default:
				s.Failures++
				jc.Failure = &junitProblem{Message: summary(c.Failure), Type: "WrongDecision", Text: dedent(c.Failure)}
			}
			s.Cases = append(s.Cases, jc)
		}
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		total += r.Elapsed
		doc.Suites = append(doc.Suites, s)
	}
	doc.Time = seconds(total)
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(append([]byte(xml.Header), out...), '\n'), nil
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.6f", d.Seconds()) }

// summary summarises a failure for the message attribute: its want and
// got lines ("want: allowed GRANTED; got: denied NO_PERMISSION ..."), else
// its first line.
func summary(failure string) string {
	lines := strings.Split(strings.TrimSpace(failure), "\n")
	var parts []string
	for _, l := range lines {
		l = strings.Join(strings.Fields(l), " ")
		if strings.HasPrefix(l, "want") || strings.HasPrefix(l, "got") || strings.HasPrefix(l, "error:") {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return strings.TrimSpace(lines[0])
	}
	return strings.Join(parts, "; ")
}

// dedent removes the text report's indentation from a failure.
func dedent(failure string) string {
	lines := strings.Split(strings.TrimRight(failure, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "    ")
	}
	return strings.Join(lines, "\n")
}
