package config

import (
	"os"

	"github.com/rolecall/rolecall/internal/strictyaml"
)

// LoadFile decodes the YAML file at path over c: keys present in the file
// replace c's values, absent keys keep them. Decoding is strict: unknown and
// duplicate keys, values of the wrong kind and keys without a value are
// errors naming the file, the line and the key, all reported together. An
// empty file changes nothing. On error, c is unchanged.
//
// LoadFile does not validate the result; call Validate once everything
// (such as flags) has been applied.
func (c *Config) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return c.load(path, data)
}

// load decodes data, read from the file name, over c.
func (c *Config) load(name string, data []byte) error {
	return strictyaml.Decode(name, data, c)
}
