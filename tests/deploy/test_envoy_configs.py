"""The standalone Envoy configs (envoy/*.yaml): accepted by the real Envoy, and holding the
path, header and error-reply rules that docs/envoy.md describes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc import headers as routeiq_headers
from tests.deploy.harness import REPO, envoy_validate

CONFIGS = sorted((REPO / "envoy").glob("*.yaml"))


def _hcm(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    hcm: dict[str, Any] = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    return hcm


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_envoy_validates(path: Path, tmp_path: Path) -> None:
    result = envoy_validate(yaml.safe_load(path.read_text()), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_paths_are_normalised_before_routing(path: Path) -> None:
    hcm = _hcm(path)
    assert hcm["normalize_path"] is True
    assert hcm["merge_slashes"] is True
    assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_client_headers_removed_early_are_every_routeiq_name_but_the_hint(path: Path) -> None:
    """The early mutation's regex (RE2; Python's re agrees on this subset) removes every
    x-routeiq-* name except exactly the client hint, plus the identity headers; the
    virtual host removes the hint on forward."""
    hcm = _hcm(path)
    (early,) = hcm["early_header_mutation_extensions"]
    mutations = early["typed_config"]["mutations"]
    (regex,) = [m["remove_on_match"]["key_matcher"]["safe_regex"]["regex"] for m in mutations[:1]]
    exact = {m["remove"] for m in mutations[1:] if "remove" in m}
    assert exact == {"x-team", "x-user-id"}
    # A budget's x-ratelimit-* headers are RouteIQ's: a client's own are removed too.
    (limits,) = [m["remove_on_match"]["key_matcher"]["safe_regex"]["regex"] for m in mutations[3:]]
    for name in ("x-ratelimit-remaining-requests", "x-ratelimit-reset-tokens"):
        assert re.fullmatch(limits, name)
    assert not re.fullmatch(limits, "x-routeiq-tier")
    hint = routeiq_headers.PROFILE
    names = [
        "x-routeiq-",
        "x-routeiq-cluster",
        "x-routeiq-p",
        "x-routeiq-profil",
        "x-routeiq-profiles",
        "x-routeiq-profilex",
        "x-routeiq-prxfile",
        "x-routeiq-confidential",
        "x-routeiq-anything-at-all",
        *(v for k, v in vars(routeiq_headers).items() if k.isupper() and isinstance(v, str)),
    ]
    for name in names:
        assert bool(re.fullmatch(regex, name)) == (name != hint), name
    for other in ("x-team", "x-routeiqprofile", "content-type", "x-route-iq-cluster"):
        assert not re.fullmatch(regex, other)
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    assert vhost["request_headers_to_remove"] == [hint]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_local_replies_use_stable_codes(path: Path) -> None:
    """No Envoy internals (%RESPONSE_CODE_DETAILS%) in the body; RouteIQ unreachable is
    a 503 routing_unavailable; RouteIQ's own refusals (routeiq_*) are left alone."""
    mappers = _hcm(path)["local_reply_config"]["mappers"]
    assert "RESPONSE_CODE_DETAILS" not in yaml.safe_dump(mappers)
    first = mappers[0]
    assert (
        "startsWith('ext_proc')"
        in first["filter"]["extension_filter"]["typed_config"]["expression"]
    )
    assert first["status_code"] == 503
    assert first["body_format_override"]["json_format"]["error"]["code"] == "routing_unavailable"
    codes = [m["body_format_override"]["json_format"]["error"]["code"] for m in mappers]
    assert all(re.fullmatch(r"[a-z_]+", c) for c in codes), codes
    for mapper in mappers[2:]:
        expression = mapper["filter"]["extension_filter"]["typed_config"]["expression"]
        assert "!response.code_details.startsWith('routeiq_')" in expression


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_client_header_routeiq_writes_is_copied_from_the_request(path: Path) -> None:
    """``responseHeaders.setBy: proxy`` relies on the proxy copying each client header
    from the routed request: every decision and budget header RouteIQ can write."""
    (vhost,) = _hcm(path)["route_config"]["virtual_hosts"]
    copied = {
        item["header"]["key"]
        for item in vhost["response_headers_to_add"]
        if item["header"]["value"] == f"%REQ({item['header']['key']})%"
    }
    written = {
        routeiq_headers.BACKEND,
        routeiq_headers.DECISION_ID,
        routeiq_headers.CATEGORY,
        routeiq_headers.TIER,
        routeiq_headers.NEEDED_TIER,
        routeiq_headers.QUALITY,
        routeiq_headers.ROUTED_PROFILE,
        routeiq_headers.OVERHEAD_MS,
        "x-routeiq-policy-dry-run",
        *(
            f"x-ratelimit-{a}-{b}"
            for a in ("limit", "remaining", "reset")
            for b in ("requests", "tokens")
        ),
    }
    assert written <= copied
