# Helpers shared by the *_test.rego files (loaded only by `routeiq policy test`).
package routeiq

import rego.v1

req(team, model, prompt_tokens, max_tokens, headers, findings) := {
	"attributes": {"request": {"http": {
		"method": "POST",
		"path": "/v1/chat/completions",
		"host": "gateway",
		"headers": headers,
	}}},
	"parsed_path": ["v1", "chat", "completions"],
	"parsed_query": {},
	"routeiq": {
		"model": model,
		"prompt_tokens": prompt_tokens,
		"max_tokens": max_tokens,
		"caller": {"team": team, "user": null, "api_key_hash": null},
		"findings": findings,
	},
}

simple(team, model) := req(team, model, 100, 100, {}, {})
