# The decision RouteIQ asks for: data.routeiq.decision.
#
# Each policy file of package routeiq adds to four partial objects, keyed by rule id:
#   violations[id] := message   the request must be refused (unless dry run)
#   constraints[key] := value    routing constraints for the selector (allowed_models...)
#   notes[id] := text            why a constraint applies (goes to `reason`)
#   upstream_headers[name] := v  headers added to the request sent upstream
# This file assembles them, applies the default-deny switch and the dry-run mode.
package routeiq

import rego.v1

default cfg := {}

cfg := data.routeiq_data

# The caller's team entry in data (undefined for unknown teams).
team_config := cfg.teams[input.routeiq.caller.team]

team_label := t if {
	t := input.routeiq.caller.team
	is_string(t)
} else := "(none)"

default dry_run_mode := false

dry_run_mode := cfg.dry_run

# Default-deny switch: only teams listed in data may call.
violations["default-deny"] := msg if {
	cfg.default_deny == true
	not team_config
	msg := sprintf("Team '%s' is not allowed to use this gateway.", [team_label])
}

rule_ids := sort(object.keys(violations) | object.keys(notes))

denial_ids := sort(object.keys(violations))

note_ids := sort(object.keys(notes))

note_text := concat("; ", [notes[id] | some id in note_ids])

denial_message := concat(" ", [violations[id] | some id in denial_ids])

default would_deny := false

would_deny if count(violations) > 0

default allowed := false

allowed if not would_deny

allowed if dry_run_mode == true

reason := denial_message if {
	would_deny
} else := note_text if {
	count(notes) > 0
} else := "allowed"

optional["message"] := denial_message if {
	would_deny
	not dry_run_mode == true
}

optional["dry_run"] := {"would_deny": true, "rule_ids": denial_ids, "message": denial_message} if {
	would_deny
	dry_run_mode == true
}

client_headers["x-routeiq-policy-dry-run"] := "would-deny" if {
	would_deny
	dry_run_mode == true
}

decision := object.union_n([
	{
		"allowed": allowed,
		"reason": reason,
		"rule_ids": rule_ids,
		"require_in_cluster": false,
		"headers": upstream_headers,
		"response_headers_to_add": client_headers,
	},
	constraints,
	optional,
])
