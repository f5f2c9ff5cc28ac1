package event

import "sort"

// DefaultKinds is the set of event kinds the original service accepted. It is
// the one place that lists them, so that a later configuration can replace the
// set without touching the parser.
var DefaultKinds = []string{
	"decision_card_drafted",
	"decision_card_signed",
	"decision_card_status_changed",
	"policy_bundle_registered",
	"request_allowed",
	"request_denied",
	"contract_promoted",
	"contract_deprecated",
	"contract_compatibility_failed",
	"watch_created",
	"watch_drifted",
	"watch_validity_flipped",
	"incident_filed",
	"remediation_planned",
	"attestation_verified",
	"attestation_tampered",
	"flag_swapped",
	"shadow_divergence_recorded",
	"tool_invocation_allowed",
	"tool_invocation_denied",
	"tool_invocation_required_approval",
	"other",
}

// KindSet is an immutable set of accepted kinds.
type KindSet struct {
	names map[string]struct{}
}

// NewKindSet returns a set holding names.
func NewKindSet(names []string) *KindSet {
	s := &KindSet{names: make(map[string]struct{}, len(names))}
	for _, n := range names {
		s.names[n] = struct{}{}
	}
	return s
}

// Default is the set of DefaultKinds.
var Default = NewKindSet(DefaultKinds)

// Has reports whether kind is in the set.
func (s *KindSet) Has(kind string) bool {
	_, ok := s.names[kind]
	return ok
}

// Names returns the kinds in sorted order.
func (s *KindSet) Names() []string {
	out := make([]string, 0, len(s.names))
	for n := range s.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
