package routeiq

import rego.v1

test_under_global_ceiling if {
	d := decision with input as req("somebody", "gpt-4o", 20000, 10000, {}, {})
	d.allowed
}

test_over_global_ceiling if {
	d := decision with input as req("somebody", "gpt-4o", 30000, 4000, {}, {})
	not d.allowed
	d.rule_ids == ["token-ceiling"]
	contains(d.message, "about 34000 tokens")
}

test_team_ceiling_overrides_global if {
	d := decision with input as req("research", "gpt-4o", 50000, 10000, {}, {})
	d.allowed
}

test_team_ceiling_is_lower_too if {
	d := decision with input as req("support", "gpt-4o-mini", 7000, 2000, {}, {})
	not d.allowed
	"token-ceiling" in d.rule_ids
}

test_null_max_tokens_counts_as_zero if {
	d := decision with input as req("somebody", "gpt-4o", 32000, null, {}, {})
	d.allowed
}

test_no_ceiling_configured if {
	d := decision with input as req("somebody", "gpt-4o", 900000, 1, {}, {})
		with data.routeiq_data.max_request_tokens as null
	d.allowed
}
