package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Every serve flag can also be set from the environment, for containers and
// systemd units: --checkpoint-interval is AUDIT_STREAM_CHECKPOINT_INTERVAL.
// A flag given on the command line wins over the environment, which wins
// over the default. The older names HOST, PORT (for --addr) keep working as
// defaults.

// secretKind says how a flag carries a secret, for the _FILE variables and
// for redaction.
type secretKind int

const (
	notSecret secretKind = iota
	// secretPath flags name a file that holds a secret (a private key):
	// AUDIT_STREAM_<NAME>_FILE is the same path, the convention
	// container secrets (/run/secrets/…) use.
	secretPath
	// secretValue flags hold the secret itself: AUDIT_STREAM_<NAME>_FILE
	// names a file it is read from, and it is never printed.
	secretValue
)

var secretFlags = map[string]secretKind{
	"signing-key": secretPath,
	"tls-key":     secretPath,
	"key-file":    secretPath,
	"token":       secretValue,
}

// envExempt flags only make sense on a command line.
var envExempt = map[string]bool{"print-config": true}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "AUDIT_STREAM_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagSources says where each flag's effective value came from: "flag",
// "env NAME", or "" for the default.
type flagSources map[string]string

// applyEnv sets every flag of fs that the command line did not set from its
// environment variable, if that is set and not empty. Call it after Parse.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) (flagSources, error) {
	src := flagSources{}
	fs.Visit(func(f *flag.Flag) { src[f.Name] = "flag" })
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		return v, ok && v != ""
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || src[f.Name] != "" || envExempt[f.Name] {
			return
		}
		name := envName(f.Name)
		value, ok := get(name)
		from := name
		if !ok && secretFlags[f.Name] != notSecret {
			if value, ok = get(name + "_FILE"); ok {
				from = name + "_FILE"
				if secretFlags[f.Name] == secretValue {
					b, rerr := os.ReadFile(value)
					if rerr != nil {
						err = fmt.Errorf("%s: %v", from, rerr)
						return
					}
					value = strings.TrimRight(string(b), "\r\n")
				}
			}
		}
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, value); serr != nil {
			shown := value
			if secretFlags[f.Name] == secretValue {
				shown = "<redacted>"
			}
			err = fmt.Errorf("%s=%q: not a valid --%s: %v", from, shown, f.Name, serr)
			return
		}
		src[f.Name] = "env " + from
	})
	return src, err
}

// redacted is a flag's value as it may be printed.
func redacted(name, value string) string {
	if value != "" && (secretFlags[name] == secretValue || strings.Contains(value, "PRIVATE+KEY")) {
		return "<redacted>"
	}
	return value
}

// printConfig writes the effective configuration: every flag, its value
// (secrets redacted), and where the value came from.
func printConfig(w io.Writer, fs *flag.FlagSet, src flagSources) {
	var names []string
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		if !envExempt[f.Name] {
			names = append(names, f.Name)
			width = max(width, len(f.Name))
		}
	})
	sort.Strings(names)
	fmt.Fprintf(w, "# audit-stream %s: effective configuration (command line > environment > default)\n", fs.Name())
	for _, n := range names {
		f := fs.Lookup(n)
		var from string
		switch s := src[n]; s {
		case "":
			from = "default; env " + envName(n)
		case "flag":
			from = "command line; env " + envName(n)
		default:
			from = s
		}
		fmt.Fprintf(w, "%-*s = %-24s # %s\n", width, n, fmt.Sprintf("%q", redacted(n, f.Value.String())), from)
	}
}
