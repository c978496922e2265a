// Package config is the configuration file of `rolecall serve --config FILE`:
// one YAML document holding every setting of the server, from its listeners to
// its policy upstream, token issuers, logs and decision log.
//
// A configuration is built in three layers, each over the one before:
//
//	cfg := config.Default()        // every default filled in
//	err := cfg.LoadFile(path)      // the file's keys, strictly decoded
//	// ... the command line's explicitly set flags ...
//	err = cfg.Validate()           // every problem of the result, at once
//
// # Decoding
//
// LoadFile is strict. A key the schema does not have, a duplicate key, a value
// of the wrong kind (a list where a duration belongs, 1.5 for an integer, 5
// for a duration, which needs its unit: 5s) and a key without a value are
// errors naming the file, the line and the key's path, such as
//
//	rolecall.yaml: line 12: unknown key grpc.granc; grpc has address, unix_socket, ...
//
// and every such problem in the file is reported together. A key absent from
// the file keeps the value it had before LoadFile (its default), also inside
// a section that sets other keys. A section left empty (every key commented
// out) keeps all its values. Inside issuers, entries start from zero values,
// as in the --issuers file, and token.ValidateConfigs fills their defaults.
// YAML anchors, aliases and merge keys (<<) may be used.
//
// Durations are Go duration strings ("10s", "5m", "1h30m", "0s"). Relative
// file paths are relative to the working directory of rolecall, not to the
// directory of the configuration file.
//
// # Secrets
//
// The file holds no secret values, only where secrets are: a *_file key names
// a file holding one, a *_env key names the environment variable holding one,
// and the ROLECALL_* variables ([EnvStytchSecret], [EnvLogtoAppSecret] and
// [EnvLogtoWebhookKey]) are read when no file is named. Secrets are read by
// the command when it builds the server, so that a Config can be printed or
// logged as it is.
//
// # Validation
//
// Validate checks the configuration as a whole, after the flags have been
// applied, and reports every problem at once, each naming its key path:
//
//	policy.on_stale: "panic": want serve or fail
//
// It reads no secret and opens no listener; the only files it reads are the
// issuers' hmac_secret_file, through token.ValidateConfigs, and
// publish.sign_key_file, which must load as an Ed25519 private key.
//
// examples/rolecall.yaml shows every key, with its default or a realistic
// value.
package config
