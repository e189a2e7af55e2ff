package routeiq

import rego.v1

test_classification_header_keeps_in_cluster if {
	d := decision with input as req("somebody", "gpt-4o", 10, 10, {"x-data-classification": "Confidential"}, {})
	d.allowed
	d.require_in_cluster == true
	d.headers["x-routeiq-confidential"] == "true"
	"confidential-in-cluster" in d.rule_ids
	not "allowed_backends" in object.keys(d)
}

test_other_classification_is_public if {
	d := decision with input as req("somebody", "gpt-4o", 10, 10, {"x-data-classification": "public"}, {})
	d.require_in_cluster == false
	d.headers == {}
}

test_secret_finding_keeps_in_cluster if {
	d := decision with input as req("somebody", "gpt-4o", 10, 10, {}, {"secret": 1})
	d.require_in_cluster == true
	contains(d.reason, "found secret")
}

test_token_id_prompt_keeps_in_cluster if {
	d := decision with input as req("somebody", "gpt-4o", 10, 10, {}, {"token_ids": 1})
	d.require_in_cluster == true
	contains(d.reason, "found token_ids")
}

test_email_alone_is_not_confidential if {
	d := decision with input as req("somebody", "gpt-4o", 10, 10, {}, {"email": 3})
	d.require_in_cluster == false
}

test_in_cluster_backend_list_intersects_team_pin if {
	d := decision with input as req("finance", "gpt-4o", 10, 10, {}, {"payment_card": 1})
		with data.routeiq_data.confidential.in_cluster_backends as ["local", "gpu"]
	d.allowed_backends == ["local"]
	d.require_in_cluster == true
}

test_in_cluster_backend_list_alone if {
	d := decision with input as req("somebody", "gpt-4o", 10, 10, {}, {"private_key": 1})
		with data.routeiq_data.confidential.in_cluster_backends as ["gpu", "local"]
	d.allowed_backends == ["gpu", "local"]
}
