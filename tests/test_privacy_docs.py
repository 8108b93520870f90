"""docs/PRIVACY.md matches the code: every release check names tests that exist,
and the retention defaults it states are the ones in the settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.settings import RetentionSettings

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "PRIVACY.md").read_text(encoding="utf-8")
NODE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def check_rows() -> dict[int, list[tuple[str, str]]]:
    section = DOC.split("## 9.", 1)[1]
    rows: dict[int, list[tuple[str, str]]] = {}
    for line in section.splitlines():
        m = re.match(r"\| (\d+) \|", line)
        if m:
            rows[int(m.group(1))] = NODE.findall(line)
    return rows


def test_every_release_check_names_tests() -> None:
    rows = check_rows()
    # Checks 1-15 are all there; the threat model adds checks 16-20 (issue 10).
    assert set(range(1, 21)) == set(rows), sorted(rows)
    assert all(rows[n] for n in rows), [n for n in rows if not rows[n]]


@pytest.mark.parametrize(
    ("path", "name"), sorted({node for nodes in check_rows().values() for node in nodes})
)
def test_named_test_exists(path: str, name: str) -> None:
    source = (ROOT / path).read_text(encoding="utf-8")
    assert re.search(rf"^(async )?def {name}\(", source, re.M), f"{path}::{name} is gone"


@pytest.mark.parametrize("field", sorted(RetentionSettings.model_fields))
def test_retention_defaults_in_the_doc_match_the_settings(field: str) -> None:
    default = RetentionSettings.model_fields[field].default
    assert re.search(rf"`{field}` = {default}\b", DOC), f"{field} = {default} not in PRIVACY.md"
