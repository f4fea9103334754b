"""Citations in the code and docs stay true: every `docs/method.md sec. N` names a section docs/method.md has,
and comments cite papers or docs, never a spec file outside the repository, issue numbers or seed files."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

METHOD = REPO / "docs" / "method.md"
CITATION = re.compile(r"docs/method\.md`?\)?,?\s*(?:secs?\.|sections?|§)\s*(\d+(?:\s*(?:,|and|§)\s*\d+)*)")
STALE = {
    "a spec outside the repository": re.compile(r"(?<!docs/)METHOD\.md"),
    "an issue number": re.compile(r"\bissues? #?\d+", re.IGNORECASE),
    "a seed file instead of the paper": re.compile(r"\bseeds? \d{3}\b", re.IGNORECASE),
}


def _sources() -> list[Path]:
    return sorted((REPO / "satcli").rglob("*.py"))


def _sections() -> set[int]:
    return {int(m) for m in re.findall(r"^## (\d+)\. ", METHOD.read_text(), re.MULTILINE)}


def _cited(text: str) -> list[int]:
    return [int(n) for match in CITATION.finditer(text) for n in re.findall(r"\d+", match.group(1))]


def test_the_citation_pattern_reads_every_form() -> None:
    text = "(docs/method.md sec. 3) docs/method.md secs. 5 and 6 docs/method.md §7 [`docs/method.md`](x) sections 4, 8"
    assert _cited(text) == [3, 5, 6, 7]  # a markdown link is not followed by the words it cites
    assert _cited("`docs/method.md` sec. 4") == [4]


def test_method_md_has_the_sections_the_code_relies_on() -> None:
    assert _sections() >= set(range(1, 9))


def test_every_method_md_citation_names_an_existing_section() -> None:
    sections = _sections()
    files = [*_sources(), *sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
    cited = {(path.relative_to(REPO), n) for path in files for n in _cited(path.read_text())}
    assert cited, "no citation found: the pattern no longer matches how the code cites docs/method.md"
    assert not {(path, n) for path, n in cited if n not in sections}


def test_no_comment_cites_a_foreign_spec_an_issue_or_a_seed_file() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {what}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for what, pattern in STALE.items()
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)
