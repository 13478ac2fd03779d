"""Alert text sent to Data Center as wiki markup renders literally: one row per kind of injection."""

from __future__ import annotations

import pytest
import requests

from jira_link.client import DATACENTER, JiraClient, adf_text, wiki_markup, wiki_plain_text

INJECTIONS = [
    pytest.param("[x|http://evil.example]", r"\[x\|http://evil.example\]", id="link"),
    pytest.param("[http://evil.example]", r"\[http://evil.example\]", id="bare-link"),
    pytest.param("ping [~admin]", r"ping \[\~admin\]", id="mention"),
    pytest.param("{code}rm -rf{code}", r"\{code\}rm \-rf\{code\}", id="code-macro"),
    pytest.param("{html}<script>{html}", r"\{html\}<script>\{html\}", id="html-macro"),
    pytest.param("{panel:title=x}", r"\{panel:title=x\}", id="macro-with-parameters"),
    pytest.param("!image.png!", r"\!image.png\!", id="image"),
    pytest.param("!http://evil.example/p.gif|width=1!", r"\!http://evil.example/p.gif\|width=1\!", id="remote-image"),
    pytest.param(
        "*bold* _it_ -del- +ins+ ^sup^ ~sub~", r"\*bold\* \_it\_ \-del\- \+ins\+ \^sup\^ \~sub\~", id="emphasis"
    ),
    pytest.param("??cite??", r"\?\?cite\?\?", id="citation"),
    pytest.param("h1. Owned", "h1&#46; Owned", id="heading"),
    pytest.param("ok\n  h3. Owned", "ok\n  h3&#46; Owned", id="heading-on-a-later-line"),
    pytest.param("bq. quoted", "bq&#46; quoted", id="quote"),
    pytest.param("see h1. mid-line", r"see h1. mid\-line", id="heading-mid-line-left-alone"),
    pytest.param("|a|b|\n||h||", r"\|a\|b\|" + "\n" + r"\|\|h\|\|", id="table-cells"),
    pytest.param(r"one\\two", "one&#92;&#92;two", id="forced-line-break"),
    pytest.param(r"C:\temp\[x]", r"C:&#92;temp&#92;\[x\]", id="backslash-cannot-escape-our-escapes"),
    pytest.param("# item\n* item\n- item\n----", "&#35; item\n\\* item\n\\- item\n\\-\\-\\-\\-", id="lists-and-rule"),
    pytest.param("(y) (!) @here", r"\(y\) \(\!\) \@here", id="emoticons-and-at"),
    pytest.param("&#91;x&#93; &amp;", "&amp;&#35;91;x&amp;&#35;93; &amp;amp;", id="entities-stay-literal"),
    pytest.param("50% done", r"50\% done", id="percent"),
    pytest.param("plain text, line\nbreak", "plain text, line\nbreak", id="plain-text-unchanged"),
]


@pytest.mark.parametrize("text, escaped", INJECTIONS)
def test_wiki_markup_escapes_each_injection(text: str, escaped: str) -> None:
    assert wiki_markup(text) == escaped


@pytest.mark.parametrize("text, escaped", INJECTIONS)
def test_wiki_markup_reads_back_as_the_same_text(text: str, escaped: str) -> None:
    assert wiki_plain_text(wiki_markup(text)) == text


def test_data_center_bodies_are_escaped_and_comments_read_back_plain() -> None:
    client = JiraClient.bearer(requests.Session(), "https://jira.test", "pat")
    assert client.text("[x|http://evil.example]") == r"\[x\|http://evil.example\]"
    assert adf_text(client.text("3 more incidents since 2026-11-23 19:00 UTC")) == (
        "3 more incidents since 2026-11-23 19:00 UTC"
    )
    assert client.flavour == DATACENTER
