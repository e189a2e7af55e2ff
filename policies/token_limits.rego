# Per-request token ceiling: estimated prompt tokens plus the requested output budget
# (max_tokens), against the team's `max_request_tokens` or the global one.
package routeiq

import rego.v1

token_ceiling := n if {
	n := team_config.max_request_tokens
	is_number(n)
} else := n if {
	n := cfg.max_request_tokens
	is_number(n)
}

requested_output := n if {
	n := input.routeiq.max_tokens
	is_number(n)
} else := 0

requested_tokens := input.routeiq.prompt_tokens + requested_output

violations["token-ceiling"] := msg if {
	requested_tokens > token_ceiling
	msg := sprintf(
		"The request needs about %d tokens (prompt estimate plus max_tokens); the limit for team '%s' is %d.",
		[requested_tokens, team_label, token_ceiling],
	)
}
