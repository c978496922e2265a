package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/rolecall/rolecall/token"
)

// issuerFlags collects token issuers from --issuers FILE and from repeatable
// --issuer flags; each --jwks-url, --audience and --profile applies to the
// --issuer before it.
type issuerFlags struct {
	file    string
	issuers []token.IssuerConfig
}

// registerFile adds --issuers FILE.
func (f *issuerFlags) registerFile(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "issuers", "", "YAML `file` of token issuers (see docs/tokens.md)")
}

// register adds --issuers FILE and the repeatable issuer flags.
func (f *issuerFlags) register(fs *flag.FlagSet) {
	f.registerFile(fs)
	fs.Func("issuer", "trust tokens from this issuer (`iss`); repeatable, each followed by its own --jwks-url, --audience, --profile", func(v string) error {
		f.issuers = append(f.issuers, token.IssuerConfig{Issuer: v})
		return nil
	})
	fs.Func("jwks-url", "key set `URL` of the preceding --issuer (default: OIDC discovery)", f.set(func(c *token.IssuerConfig, v string) { c.JWKSURL = v }))
	fs.Func("audience", "expected `audience` of the preceding --issuer; repeatable", f.set(func(c *token.IssuerConfig, v string) { c.Audiences = append(c.Audiences, v) }))
	fs.Func("profile", "`profile` of the preceding --issuer: logto, stytch or generic", f.set(func(c *token.IssuerConfig, v string) { c.Profile = token.Profile(v) }))
}

func (f *issuerFlags) set(apply func(*token.IssuerConfig, string)) func(string) error {
	return func(v string) error {
		if len(f.issuers) == 0 {
			return errors.New("comes after the --issuer it belongs to")
		}
		apply(&f.issuers[len(f.issuers)-1], v)
		return nil
	}
}

// configs returns every configured issuer, from the file first.
func (f *issuerFlags) configs() ([]token.IssuerConfig, error) {
	var all []token.IssuerConfig
	if f.file != "" {
		cfgs, err := token.LoadIssuersFile(f.file)
		if err != nil {
			return nil, fmt.Errorf("--issuers: %w", err)
		}
		all = append(all, cfgs...)
	}
	return append(all, f.issuers...), nil
}
