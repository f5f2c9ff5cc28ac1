package kinds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Bounds on what a kinds file may hold. The file is the operator's, but a
// mistake in it (an alias bomb, a file of the wrong kind) should end in a
// clear refusal rather than a start-up that never finishes.
const (
	// MaxFileSize is the largest kinds file read.
	MaxFileSize = 4 << 20
	// maxValues bounds the values the file decodes to, aliases expanded.
	maxValues = 1 << 20
	// maxDepth bounds the nesting of the file's values.
	maxDepth = 256
)

// decodeJSON decodes one JSON document into the values jsonschema works on
// (objects as map[string]any, numbers as json.Number), refusing a repeated
// member, which encoding/json would silently resolve to the last one.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n := 0
	v, err := jsonValue(dec, &n, 0)
	if err != nil {
		return nil, jsonPos(dec, data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, jsonPos(dec, data, errors.New("data after the top-level value"))
	}
	return v, nil
}

// jsonPos adds the line of the decoder's position to err.
func jsonPos(dec *json.Decoder, data []byte, err error) error {
	var syn *json.SyntaxError
	off := dec.InputOffset()
	if errors.As(err, &syn) {
		off = syn.Offset
	}
	off = min(max(off, 0), int64(len(data)))
	return fmt.Errorf("line %d: %w", bytes.Count(data[:off], []byte("\n"))+1, err)
}

func jsonValue(dec *json.Decoder, n *int, depth int) (any, error) {
	if *n++; *n > maxValues {
		return nil, fmt.Errorf("more than %d values", maxValues)
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string) // the decoder allows only strings here
				if _, dup := obj[k]; dup {
					return nil, fmt.Errorf("member %q is repeated", k)
				}
				if obj[k], err = jsonValue(dec, n, depth+1); err != nil {
					return nil, err
				}
			}
			_, err := dec.Token()
			return obj, err
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := jsonValue(dec, n, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token()
			return arr, err
		}
		return nil, fmt.Errorf("unexpected %q", t)
	default:
		return t, nil // string, json.Number, bool or nil
	}
}

// decodeYAML decodes one YAML document into the same values as decodeJSON.
// It walks the node tree itself rather than decoding into any, so that
// numbers keep their exact text, timestamps stay the strings they are in
// JSON, repeated keys are refused, and aliases are expanded under a bound.
func decodeYAML(data []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 {
		return nil, errors.New("the file is empty")
	}
	n := 0
	return yamlValue(&doc, &n, 0)
}

func yamlValue(node *yaml.Node, n *int, depth int) (any, error) {
	if *n++; *n > maxValues {
		return nil, fmt.Errorf("more than %d values (aliases expanded)", maxValues)
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("line %d: nested deeper than %d levels", node.Line, maxDepth)
	}
	switch node.Kind {
	case yaml.DocumentNode:
		if len(node.Content) != 1 {
			return nil, errors.New("expected one YAML document")
		}
		return yamlValue(node.Content[0], n, depth)
	case yaml.AliasNode:
		return yamlValue(node.Alias, n, depth+1)
	case yaml.MappingNode:
		obj := make(map[string]any, len(node.Content)/2)
		for i := 0; i+1 < len(node.Content); i += 2 {
			kn := node.Content[i]
			for kn.Kind == yaml.AliasNode {
				kn = kn.Alias
			}
			if kn.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a mapping key must be a plain value", kn.Line)
			}
			if kn.ShortTag() == "!!merge" {
				return nil, fmt.Errorf("line %d: merge keys (<<) are not supported", kn.Line)
			}
			k := kn.Value
			if _, dup := obj[k]; dup {
				return nil, fmt.Errorf("line %d: key %q is repeated", kn.Line, k)
			}
			v, err := yamlValue(node.Content[i+1], n, depth+1)
			if err != nil {
				return nil, err
			}
			obj[k] = v
		}
		return obj, nil
	case yaml.SequenceNode:
		arr := make([]any, 0, len(node.Content))
		for _, c := range node.Content {
			v, err := yamlValue(c, n, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case yaml.ScalarNode:
		return yamlScalar(node)
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", node.Line)
}

func yamlScalar(node *yaml.Node) (any, error) {
	switch tag := node.ShortTag(); tag {
	case "!!str", "!!timestamp":
		// A date is a string in JSON, and in a schema ("const": "2026-01-01").
		return node.Value, nil
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := node.Decode(&b); err != nil {
			return nil, fmt.Errorf("line %d: %w", node.Line, err)
		}
		return b, nil
	case "!!int", "!!float":
		if jsonNumber.MatchString(node.Value) {
			return json.Number(node.Value), nil // exact, however long
		}
		var v any
		if err := node.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", node.Line, err)
		}
		var s string
		switch x := v.(type) {
		case int:
			s = strconv.Itoa(x)
		case int64:
			s = strconv.FormatInt(x, 10)
		case uint64:
			s = strconv.FormatUint(x, 10)
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("line %d: %s is not a JSON number", node.Line, node.Value)
			}
			s = strconv.FormatFloat(x, 'g', -1, 64)
		default:
			return nil, fmt.Errorf("line %d: %s is not a JSON number", node.Line, node.Value)
		}
		if tag == "!!int" && strings.ContainsAny(s, ".eE") {
			return nil, fmt.Errorf("line %d: integer %s is too large", node.Line, node.Value)
		}
		return json.Number(s), nil
	default:
		return nil, fmt.Errorf("line %d: values tagged %s have no JSON form", node.Line, tag)
	}
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
