package routeiq

import rego.v1

test_listed_model_allowed if {
	d := decision with input as simple("research", "gpt-4o")
	d.allowed
	d.allowed_models == ["gpt-4o", "gpt-4o-mini", "o3-mini"]
}

test_unlisted_model_denied if {
	d := decision with input as simple("support", "gpt-4o")
	not d.allowed
	"team-model-allowlist" in d.rule_ids
	contains(d.message, "may not use model 'gpt-4o'")
}

test_profile_passes_and_constrains if {
	d := decision with input as simple("support", "auto")
	d.allowed
	d.allowed_models == ["gpt-4o-mini"]
}

test_unknown_team_unconstrained if {
	d := decision with input as simple("somebody", "gpt-4o")
	d.allowed
	not "allowed_models" in object.keys(d)
	d.rule_ids == []
}

test_empty_allowlist_denies_models if {
	d := decision with input as simple("interns", "gpt-4o-mini")
	not d.allowed
}

test_team_pinned_to_backends if {
	d := decision with input as simple("finance", "gpt-4o")
	d.allowed
	d.allowed_backends == ["local"]
}

test_team_max_tier if {
	d := decision with input as simple("support", "eco")
	d.max_tier == "eco"
	"team-max-tier" in d.rule_ids
}

test_missing_team_is_labelled if {
	d := decision with input as simple(null, "gpt-4o") with data.routeiq_data.default_deny as true
	d.message == "Team '(none)' is not allowed to use this gateway."
}
