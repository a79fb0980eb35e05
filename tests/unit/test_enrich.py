from __future__ import annotations

from pathlib import Path

import fastjsonschema
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from workers.enrich import GeoIP, ProjectRules, add_user_agent, describe_user_agent

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36"
)
SAFARI_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def event(**properties: object) -> dict[str, object]:
    return {"project_id": 1, "event": "$pageview", "ip": None, "properties": dict(properties)}


def test_chrome_on_windows() -> None:
    described = describe_user_agent(CHROME_WINDOWS)
    assert described.bot is None
    assert described.properties == {
        "$browser": "Chrome",
        "$browser_version": "120.0",
        "$os": "Windows",
        "$os_version": "10",
        "$device_type": "Desktop",
    }


def test_safari_on_ios() -> None:
    described = describe_user_agent(SAFARI_IOS)
    assert described.properties["$browser"] == "Mobile Safari"
    assert described.properties["$os"] == "iOS"
    assert described.properties["$os_version"] == "17.1"
    assert described.properties["$device_type"] == "Mobile"
    assert described.properties["$device"] == "iPhone"


def test_googlebot_is_flagged_and_kept() -> None:
    enriched = event(**{"$raw_user_agent": GOOGLEBOT})
    add_user_agent(enriched)
    props = enriched["properties"]
    assert props["$is_bot"] is True and props["$bot_name"] == "Googlebot"  # type: ignore[index]
    assert props["$device_type"] == "Bot"  # type: ignore[index]


def test_client_sent_values_win_over_parsed_ones() -> None:
    enriched = event(**{"$raw_user_agent": CHROME_WINDOWS, "$browser": "Edge"})
    add_user_agent(enriched)
    assert enriched["properties"]["$browser"] == "Edge"  # type: ignore[index]
    assert enriched["properties"]["$os"] == "Windows"  # type: ignore[index]


def test_no_user_agent_adds_nothing() -> None:
    enriched = event(plan="pro")
    add_user_agent(enriched)
    assert enriched["properties"] == {"plan": "pro"}


@pytest.fixture(scope="module")
def mmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("geoip") / "test-city.mmdb"
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {
            "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
            "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
            "city": {"names": {"en": "London"}},
        },
    )
    writer.to_db_file(str(path))
    return path


def test_ip_in_the_database_gets_country_region_and_city(mmdb: Path) -> None:
    geoip = GeoIP.open(str(mmdb))
    assert geoip is not None
    enriched = {**event(), "ip": "81.2.69.160"}
    geoip.add_place(enriched)
    assert enriched["properties"] == {
        "$geoip_country_code": "GB",
        "$geoip_country_name": "United Kingdom",
        "$geoip_subdivision_1_code": "ENG",
        "$geoip_subdivision_1_name": "England",
        "$geoip_city_name": "London",
    }
    unknown = {**event(), "ip": "10.1.2.3"}
    geoip.add_place(unknown)
    assert unknown["properties"] == {}
    junk = {**event(), "ip": "not-an-ip"}
    geoip.add_place(junk)
    assert junk["properties"] == {}
    geoip.close()


def test_geoip_disable_is_respected(mmdb: Path) -> None:
    geoip = GeoIP.open(str(mmdb))
    assert geoip is not None
    enriched = {**event(**{"$geoip_disable": True}), "ip": "81.2.69.160"}
    geoip.add_place(enriched)
    assert "$geoip_country_code" not in enriched["properties"]  # type: ignore[operator]


def test_missing_database_turns_geoip_off(tmp_path: Path) -> None:
    assert GeoIP.open(str(tmp_path / "missing.mmdb")) is None
    assert GeoIP.open("") is None


def test_rules_block_and_validate_per_project() -> None:
    schema = {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}
    rules = ProjectRules(blocked={(1, "spam")}, validators={(1, "purchase"): fastjsonschema.compile(schema)})
    assert rules.is_blocked({"project_id": 1, "event": "spam"})
    assert not rules.is_blocked({"project_id": 2, "event": "spam"})
    ok = {"project_id": 1, "event": "purchase", "properties": {"amount": 3}}
    bad = {"project_id": 1, "event": "purchase", "properties": {"amount": "three"}}
    assert rules.schema_error(ok) is None
    assert "amount must be number" in (rules.schema_error(bad) or "")
    assert rules.schema_error({"project_id": 2, "event": "purchase", "properties": {}}) is None
