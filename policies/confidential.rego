# Confidential traffic stays in the cluster.
#
# A request is confidential when its classification header (routeiq_data.confidential
# .header, default x-data-classification) carries one of the configured labels, or when
# a content detector found one of the configured kinds (emails, card numbers, keys).
# The decision then sets require_in_cluster (the selector keeps only backends with
# inCluster: true) and, if data lists in_cluster_backends, also allowed_backends.
package routeiq

import rego.v1

conf := object.get(cfg, "confidential", {})

classification_header := lower(object.get(conf, "header", "x-data-classification"))

confidential_labels := {lower(l) | some l in object.get(conf, "labels", ["confidential"])}

confidential_by_header if {
	value := input.attributes.request.http.headers[classification_header]
	lower(value) in confidential_labels
}

confidential_findings := sort([kind |
	some kind in object.get(conf, "finding_kinds", [])
	input.routeiq.findings[kind] > 0
])

confidential if confidential_by_header

confidential if count(confidential_findings) > 0

constraints["require_in_cluster"] := true if confidential

upstream_headers["x-routeiq-confidential"] := "true" if confidential

backend_limits contains limit if {
	confidential
	count(conf.in_cluster_backends) > 0
	limit := {b | some b in conf.in_cluster_backends}
}

confidential_why contains sprintf("header %s", [classification_header]) if confidential_by_header

confidential_why contains sprintf("found %s", [concat(",", confidential_findings)]) if {
	count(confidential_findings) > 0
}

notes["confidential-in-cluster"] := text if {
	confidential
	text := sprintf("confidential traffic (%s) kept in-cluster", [concat("; ", sort(confidential_why))])
}
