"""The docs: every link of the README and docs/ points at a file that exists and, with an #anchor, at a heading in
it; the README stays at most 300 lines."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


def test_slugs_follow_github():
    assert slug("Self-consistency before and after RL (2026-12-06)") == "self-consistency-before-and-after-rl-2026-12-06"
    assert slug("Your own data, model and reward") == "your-own-data-model-and-reward"


def broken_links(doc: Path) -> list[str]:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    return broken


def test_a_missing_file_or_heading_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# A heading\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[ok](other.md#a-heading) [gone](missing.md) [no](other.md#nope) [web](https://example.org)")
    assert broken_links(doc) == ["missing.md: no such file", "other.md#nope: no heading #nope in other.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_link_reaches_a_file_and_heading(doc):
    assert broken_links(doc) == [], doc.name


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
