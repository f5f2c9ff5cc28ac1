package event

import (
	"errors"
	"slices"
	"strconv"

	"github.com/audit-stream/audit-stream/internal/suggest"
)

// Kind is one accepted event kind. Everything known about a kind hangs off
// it (today its description; a kind set loaded from configuration may add
// more, such as a payload schema), so that GET /kinds, the README and the
// refusal of an unknown kind all read the same place.
type Kind struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// defaultKinds are the event kinds the original service accepted, in the
// order it listed them. They are the one place that lists them, so that a
// later configuration can replace the set without touching the parser.
// Unexported so that nothing can change the default set after start-up;
// DefaultKindSet.Kinds() hands out a copy.
var defaultKinds = []Kind{
	{"decision_card_drafted", "A decision card was drafted: a proposed decision with its rationale, not yet signed."},
	{"decision_card_signed", "A decision card was signed by its approver and takes effect."},
	{"decision_card_status_changed", "A decision card moved to another status (superseded, withdrawn, expired, ...)."},
	{"policy_bundle_registered", "A new policy bundle version was registered with the policy engine."},
	{"request_allowed", "The policy engine allowed a request."},
	{"request_denied", "The policy engine denied a request; the payload names the rule."},
	{"contract_promoted", "A data or API contract version was promoted (e.g. to production)."},
	{"contract_deprecated", "A contract version was deprecated."},
	{"contract_compatibility_failed", "A contract version failed its compatibility check against the previous one."},
	{"watch_created", "A watch (a monitored expectation about a system) was created."},
	{"watch_drifted", "A watched value drifted from its expected state."},
	{"watch_validity_flipped", "A watch changed between valid and invalid."},
	{"incident_filed", "An incident was filed."},
	{"remediation_planned", "A remediation plan was recorded for an incident or finding."},
	{"attestation_verified", "An attestation (signed statement about an artefact) was verified."},
	{"attestation_tampered", "An attestation failed verification: it was altered or signed by the wrong key."},
	{"flag_swapped", "A feature flag or configuration switch was changed."},
	{"shadow_divergence_recorded", "A shadow deployment answered differently from the live one."},
	{"tool_invocation_allowed", "An AI agent's tool call was allowed."},
	{"tool_invocation_denied", "An AI agent's tool call was denied."},
	{"tool_invocation_required_approval", "An AI agent's tool call was held until a human approves it."},
	{"other", "Anything else worth keeping in the governance record."},
}

// KindSet is an immutable set of accepted kinds.
type KindSet struct {
	kinds []Kind         // in the order given
	index map[string]int // name to position in kinds
	names []string       // sorted
}

// KindSetOf returns the set of kinds, in the order given. Names must be
// non-empty and distinct.
func KindSetOf(kinds []Kind) (*KindSet, error) {
	s := &KindSet{kinds: slices.Clone(kinds), index: make(map[string]int, len(kinds))}
	for i, k := range kinds {
		if k.Name == "" {
			return nil, errors.New("event kind " + strconv.Itoa(i+1) + " has no name")
		}
		if _, dup := s.index[k.Name]; dup {
			return nil, errors.New("event kind " + strconv.Quote(k.Name) + " is listed twice")
		}
		s.index[k.Name] = i
		s.names = append(s.names, k.Name)
	}
	slices.Sort(s.names)
	return s, nil
}

// NewKindSet returns a set holding names, without descriptions.
func NewKindSet(names []string) *KindSet {
	kinds := make([]Kind, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			kinds = append(kinds, Kind{Name: n})
		}
	}
	s, err := KindSetOf(kinds)
	if err != nil {
		panic(err) // only an empty name gets here
	}
	return s
}

// DefaultKindSet is the set of kinds the original service accepted.
var DefaultKindSet = func() *KindSet {
	s, err := KindSetOf(defaultKinds)
	if err != nil {
		panic(err)
	}
	return s
}()

// Has reports whether kind is in the set.
func (s *KindSet) Has(kind string) bool {
	_, ok := s.index[kind]
	return ok
}

// Lookup returns the kind named name.
func (s *KindSet) Lookup(name string) (Kind, bool) {
	i, ok := s.index[name]
	if !ok {
		return Kind{}, false
	}
	return s.kinds[i], true
}

// Kinds returns the kinds in the order the set was made with.
func (s *KindSet) Kinds() []Kind { return slices.Clone(s.kinds) }

// Names returns the kind names in sorted order.
func (s *KindSet) Names() []string { return slices.Clone(s.names) }

// Closest returns the kind whose name is nearest to name by edit distance.
func (s *KindSet) Closest(name string) string {
	near, _ := suggest.Closest(name, s.names)
	return near
}

// Unknown is the reason given for a kind not in the set: it names the
// closest valid kind, since the usual cause is a typo.
func (s *KindSet) Unknown(kind string) string {
	reason := "unknown kind " + quoteShort(kind) + " ("
	if near, d := suggest.Closest(kind, s.names); d >= 0 && d <= max(2, len(near)/3) {
		reason += "did you mean " + strconv.Quote(near) + "? "
	} else if near != "" {
		reason += "the closest valid kind is " + strconv.Quote(near) + "; "
	}
	return reason + "GET /kinds lists all " + strconv.Itoa(len(s.kinds)) + ")"
}
