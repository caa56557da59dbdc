"""Every recording is well formed and says where it came from, so a replay failure can
always be traced back to the public answer it was taken from."""

from __future__ import annotations

import json

import pytest

from .recorded import RECORDINGS, load, names

README = (RECORDINGS.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", names())
def test_each_recording_names_its_source_and_is_listed(name: str) -> None:
    raw = json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))
    assert set(raw) <= {
        "title",
        "source",
        "api_version",
        "request",
        "response",
        "org_specific_keys",
        "edits",
    }
    source = raw["source"]
    assert source["kind"] in {"zoho-doc", "repository", "issue"}
    if source["kind"] == "issue":
        assert source["url"].startswith("https://github.com/")
    if "repository" in source:
        assert len(source["commit"]) == 40 and source["path"]
    if source["kind"] == "zoho-doc":
        assert source["doc_url"].startswith("https://")
    recording = load(name)
    assert recording.method in {"GET", "POST", "PUT", "DELETE"}
    assert 200 <= recording.status < 600
    assert (recording.body is None) == (recording.status == 204 or name == "notification_callback")
    assert f"`{name}.json`" in README


def test_v8_paths_keep_everything_but_the_version() -> None:
    assert load("records_list").v8_path() == "/crm/v8/Leads"
    assert load("bulk_read_completed").v8_path() == "/crm/bulk/v8/read/3652397000000646004"
    assert load("oauth_refresh").v8_path() == "/oauth/v2/token"
