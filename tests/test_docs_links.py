"""Every relative link in README.md and docs/*.md points to a file that exists and, with `#anchor`, to a heading.

`mkdocs build --strict` checks the links between the pages; it never sees README.md, whose links into docs/
are checked only here. Anchors are the slugs MkDocs gives headings (Python-Markdown's toc extension)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"(`+).+?\1", re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slugify(heading: str) -> str:
    """The anchor MkDocs gives a heading: Python-Markdown's toc.slugify on the heading's rendered text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")  # links and code render as text
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file (a repeated heading gets _1, _2, ... as in MkDocs)."""
    seen: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug, n = slugify(heading), 0
        while (slug if n == 0 else f"{slug}_{n}") in seen:
            n += 1
        seen.add(slug if n == 0 else f"{slug}_{n}")
    return seen


def broken_links(page: Path) -> list[str]:
    """'target: reason' for each relative link of a page that leads nowhere."""
    problems = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{target}: no file {file.relative_to(REPO) if file.is_relative_to(REPO) else file}")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            problems.append(f"{target}: no heading with anchor #{anchor}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(REPO)) for page in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_links_into_the_docs() -> None:
    text = prose((REPO / "README.md").read_text(encoding="utf-8"))
    linked = {target.partition("#")[0] for target in LINK.findall(text)}
    assert {f"docs/{page.name}" for page in (REPO / "docs").glob("*.md")} <= linked


def test_slugs_follow_mkdocs() -> None:
    assert slugify("Class/cross-class spectra") == "classcross-class-spectra"
    assert slugify("Settings in `pyproject.toml`") == "settings-in-pyprojecttoml"
    assert slugify("JSON fields (`--format jsonl` and `json`)") == "json-fields-format-jsonl-and-json"


def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n## Part two\n", encoding="utf-8")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md#part-two) [gone](nope.md) [anchor](a.md#part-three) [self](#here)\n\n"
        "```\n[not a link](ignored.md)\n```\n\n## Here\n",
        encoding="utf-8",
    )
    problems = broken_links(page)
    assert [p.split(":")[0] for p in problems] == ["nope.md", "a.md#part-three"]
