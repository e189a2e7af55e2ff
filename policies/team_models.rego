# Per-team model allow-lists, backend pins and tier caps (data: routeiq_data.teams).
#
# A team with `models` may name only those models; profile names (`auto`, `eco`...)
# pass, and the selector is told to pick among the allowed models.
# `backends` pins the team to those backends; `max_tier` caps the tier it may reach.
package routeiq

import rego.v1

profile_names := {p | some p in object.get(cfg, "profiles", [])}

team_models := {m | some m in team_config.models}

has_model_allowlist if is_array(team_config.models)

violations["team-model-allowlist"] := msg if {
	has_model_allowlist
	not input.routeiq.model in profile_names
	not input.routeiq.model in team_models
	msg := sprintf("Team '%s' may not use model '%s'.", [team_label, input.routeiq.model])
}

constraints["allowed_models"] := sort(team_models) if has_model_allowlist

notes["team-model-allowlist"] := sprintf("team '%s' limited to its model allow-list", [team_label]) if {
	has_model_allowlist
}

constraints["max_tier"] := team_config.max_tier if is_string(team_config.max_tier)

notes["team-max-tier"] := sprintf("team '%s' capped at tier '%s'", [team_label, team_config.max_tier]) if {
	is_string(team_config.max_tier)
}

# Every source of a backend restriction; the selector gets their intersection.
backend_limits contains limit if {
	is_array(team_config.backends)
	limit := {b | some b in team_config.backends}
}

notes["team-backends"] := sprintf("team '%s' pinned to its backends", [team_label]) if {
	is_array(team_config.backends)
}

constraints["allowed_backends"] := sort(intersection(backend_limits)) if count(backend_limits) > 0
