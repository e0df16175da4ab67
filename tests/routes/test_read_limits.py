"""Read endpoints answer a clear 4xx for limits and ids the database cannot take, never a 500.

Real HTTP over loopback, SQLite and PostgreSQL (where a negative LIMIT or an id past 2**31-1 is
an error from the database itself).
"""

from __future__ import annotations

import pytest

from tests.conftest import READER, Warroom
from tests.postmortem.test_assemble import seed_incident

TOO_BIG = "99999999999999999999"  # past 64 bits, let alone PostgreSQL's 32-bit SERIAL
PAST_INT4 = str(2**31)


@pytest.mark.parametrize("limit", ["-1", "0", "1001", "1" + "0" * 30, "ten", "1.5", " 5"])
def test_a_negative_huge_or_non_numeric_limit_is_a_400(warroom: Warroom, limit: str) -> None:
    seed_incident(warroom)
    for path in ("/api/incidents", "/api/bundles"):
        answer = warroom.http.get(path, params={"limit": limit}, headers=READER)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"] == "limit must be a whole number from 1 to 1000"
    assert len(warroom.http.get("/api/incidents", params={"limit": "1000"}, headers=READER).json()) == 1


@pytest.mark.parametrize("incident_id", [TOO_BIG, PAST_INT4, "0", "abc", "-1"])
def test_an_id_the_database_cannot_hold_is_a_400_on_every_read(warroom: Warroom, incident_id: str) -> None:
    warroom.sign_in()
    for path in (f"/api/incidents/{incident_id}", f"/api/incidents/{incident_id}/postmortem",
                 f"/incidents/{incident_id}", f"/incidents/{incident_id}/postmortem",
                 f"/incidents/{incident_id}/postmortem.md"):
        answer = warroom.http.get(path, headers=READER)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)


@pytest.mark.parametrize("incident_id", [TOO_BIG, PAST_INT4])
def test_an_out_of_range_id_says_what_is_wrong(warroom: Warroom, incident_id: str) -> None:
    warroom.sign_in()
    api = warroom.http.get(f"/api/incidents/{incident_id}", headers=READER)
    assert api.status_code == 400 and api.json()["error"] == "incident id must be a whole number from 1 to 2147483647"
    page = warroom.http.get(f"/incidents/{incident_id}/postmortem")
    assert page.status_code == 400 and "from 1 to 2147483647" in page.text
    edit = warroom.http.post(f"/incidents/{incident_id}/postmortem", data={"text": "x", "csrf": warroom.csrf})
    assert edit.status_code == 400
    put = warroom.http.put(f"/api/incidents/{incident_id}/postmortem", json={"text": "x"}, headers=READER)
    assert put.status_code == 400


def test_a_service_name_the_database_cannot_compare_is_a_400(warroom: Warroom) -> None:
    answer = warroom.http.get("/api/bundles", params={"service": "llm\x00gateway"})
    assert answer.status_code == 400 and "NUL" in answer.json()["error"]
