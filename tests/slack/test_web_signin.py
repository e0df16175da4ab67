"""``/incident web``: a one-time sign-in link, shown only to the person who asked."""

from __future__ import annotations

import re

import httpx

from tests.slack.conftest import INCIDENTS, PRIYA, SAM, reply_text


def test_incident_web_gives_only_the_asker_a_link_that_signs_them_in(slack):
    answer = reply_text(slack.command("/incident web", user=PRIYA))
    link = re.search(r"http://\S+/signin/[\w-]+", answer)
    assert link is not None and link.group(0).startswith(slack.url + "/signin/"), answer
    assert "works once" in answer
    assert not any("/signin/" in (m.text or "") for m in slack.messages(INCIDENTS))  # ephemeral: not in the channel
    other = re.search(r"/signin/[\w-]+", reply_text(slack.command("/incident web", user=SAM)))
    assert other is not None and other.group(0) not in link.group(0)

    with httpx.Client(timeout=10) as browser:
        assert "U0PRIYA" in browser.get(link.group(0)).text
        token = link.group(0).rsplit("/", 1)[1]
        assert browser.post(f"{slack.url}/signin", data={"token": token}).status_code == 303
        page = browser.get(f"{slack.url}/incidents")
        assert page.status_code == 200 and "U0PRIYA" in page.text and "Sign out" in page.text
