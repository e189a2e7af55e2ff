package routeiq

import rego.v1

test_plain_request_allowed if {
	d := decision with input as simple("somebody", "gpt-4o")
	d == {
		"allowed": true,
		"reason": "allowed",
		"rule_ids": [],
		"require_in_cluster": false,
		"headers": {},
		"response_headers_to_add": {},
	}
}

test_default_deny_refuses_unknown_team if {
	d := decision with input as simple("somebody", "gpt-4o") with data.routeiq_data.default_deny as true
	not d.allowed
	d.rule_ids == ["default-deny"]
}

test_default_deny_lets_listed_team_in if {
	d := decision with input as simple("research", "gpt-4o") with data.routeiq_data.default_deny as true
	d.allowed
}

test_dry_run_allows_and_reports if {
	d := decision with input as simple("support", "gpt-4o") with data.routeiq_data.dry_run as true
	d.allowed
	d.dry_run.would_deny
	d.dry_run.rule_ids == ["team-model-allowlist"]
	d.response_headers_to_add["x-routeiq-policy-dry-run"] == "would-deny"
	not "message" in object.keys(d)
}

test_messages_of_all_violations_are_joined if {
	d := decision with input as req("support", "gpt-4o", 9000, 0, {}, {})
	d.rule_ids == ["team-max-tier", "team-model-allowlist", "token-ceiling"]
	startswith(d.message, "Team 'support' may not use model 'gpt-4o'. The request needs")
}
