package rctest

import (
	"bytes"
	_ "embed"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/pdp"
)

//go:embed whocan.yaml
var whoCanYAML []byte

// WhoCanCase is one question to ListSubjects over the bookstore policy and
// its whole answer.
type WhoCanCase struct {
	Name     string `yaml:"name"`
	Org      string `yaml:"org"`
	Resource string `yaml:"resource"`
	Action   string `yaml:"action"`
	// Reason is the pdp.Reason's name; empty means GRANTED.
	Reason string `yaml:"reason"`
	// Subjects are "subject role", in the document's order.
	Subjects []string `yaml:"subjects"`
}

// Query is the case's question, for one page of limit subjects.
func (c WhoCanCase) Query(limit int) pdp.SubjectQuery {
	return pdp.SubjectQuery{Org: c.Org, Resource: c.Resource, Action: c.Action, Limit: limit}
}

// Want is the expected answer as AllowedSubjects.
func (c WhoCanCase) Want() []pdp.AllowedSubject {
	out := []pdp.AllowedSubject{}
	for _, s := range c.Subjects {
		sub, role, _ := strings.Cut(s, " ")
		out = append(out, pdp.AllowedSubject{Subject: sub, MatchedRole: role})
	}
	return out
}

// WantReason is the expected reason's name.
func (c WhoCanCase) WantReason() string {
	if c.Reason == "" {
		return pdp.Granted.String()
	}
	return c.Reason
}

// WhoCanCases are the who-can cases of internal/rctest/whocan.yaml.
func WhoCanCases(t testing.TB) []WhoCanCase {
	t.Helper()
	var doc struct {
		Cases []WhoCanCase `yaml:"cases"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(whoCanYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("whocan.yaml: %v", err)
	}
	return doc.Cases
}
