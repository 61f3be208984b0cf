"""The docs hold together: the README stays a short front door, every relative link of the docs resolves to a file of
the repository, and every pointer from the code to a docs section (`docs/<file>.md, "Section"`) names a file and a
heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
# Where the code points at docs sections (the docs themselves are checked through their links).
POINTER_ROOTS = ("workflow", "tests", "bench", "profiles", "config", "envs", ".ci", "Snakefile")
POINTER_SUFFIXES = {".py", ".smk", ".yaml", ".yml", ".sh", ""}

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
# docs/<file>.md, "Section"[, "Section" | and "Section" ...]
# [text](file.md), "Section" in the docs: a link to a section of another docs file
LINKED_SECTION = re.compile(r'\]\(([^)\s#]+\.md)\),\s+((?:"[^"]+")(?:(?:,\s*|\s+and\s+)"[^"]+")*)')
POINTER = re.compile(r'(docs/[\w.-]+\.md),\s+((?:"[^"]+")(?:(?:,\s*|\s+and\s+)"[^"]+")*)')


def doc_files() -> list[Path]:
    return [
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "config/README.md",
        REPO / "bench/README.md",
    ]


def headings(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {" ".join(h.split()) for h in HEADING.findall(text)}


def relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    links = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor in the same file
        links.append(target.split("#", 1)[0])
    return links


def code_text(path: Path) -> str:
    """A source file's text with comment markers and line breaks folded away, so that a pointer wrapped over two
    comment or docstring lines reads as one."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return " ".join(re.sub(r"^\s*#+\s?", "", line).strip() for line in lines)


def pointer_files() -> list[Path]:
    files = []
    for root in POINTER_ROOTS:
        base = REPO / root
        candidates = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        files += [p for p in candidates if p.suffix in POINTER_SUFFIXES and "__pycache__" not in p.parts]
    return [p for p in files if p != Path(__file__).resolve()]  # this file spells pointers out as examples


def pointers() -> list[tuple[str, str, list[str]]]:
    """(where, docs file, [sections]) for every docs-section pointer in the code."""
    found = []
    for path in pointer_files():
        for match in POINTER.finditer(code_text(path)):
            sections = [" ".join(s.split()) for s in re.findall(r'"([^"]+)"', match.group(2))]
            found.append((str(path.relative_to(REPO)), match.group(1), sections))
    return found


def test_readme_is_short():
    lines = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}: the rest goes to docs/)"
    )


def test_readme_keeps_the_test_commands():
    """.ci/run calls the README's test command; the fast tier is the developer loop."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/python -m pytest tests -v -n 2 --durations=20 -m slow" in text
    assert '.venv/bin/python -m pytest -m "not slow"' in text


def test_every_docs_file_is_linked_from_the_readme():
    linked = {(REPO / target).resolve() for target in relative_links(REPO / "README.md")}
    missing = [str(p.relative_to(REPO)) for p in doc_files()[1:] if p.resolve() not in linked]
    assert not missing, f"not linked from README.md: {missing}"


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    broken = [target for target in relative_links(doc) if not (doc.parent / target).resolve().exists()]
    assert not broken, f"{doc.relative_to(REPO)}: links to missing files {broken}"


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_sections_named_beside_links_exist(doc):
    text = " ".join(FENCE.sub("", doc.read_text(encoding="utf-8")).split())
    wrong = []
    for match in LINKED_SECTION.finditer(text):
        target = (doc.parent / match.group(1)).resolve()
        if not target.is_file():
            continue  # a missing file is test_relative_links_resolve's finding (or a pending doc)
        known = headings(target)
        wrong += [
            f'{match.group(1)}: no heading "{s}"' for s in re.findall(r'"([^"]+)"', match.group(2)) if s not in known
        ]
    assert not wrong, f"{doc.relative_to(REPO)}: " + "; ".join(wrong)


def test_code_pointers_name_existing_docs_sections():
    found = pointers()
    assert found, "no docs pointer found: the pattern or the roots are wrong"
    wrong = []
    for where, doc, sections in found:
        path = REPO / doc
        if not path.is_file():
            wrong.append(f"{where}: {doc} does not exist")
            continue
        known = headings(path)
        wrong += [f'{where}: {doc} has no heading "{s}"' for s in sections if s not in known]
    assert not wrong, "\n".join(wrong)


def test_no_pointer_to_a_readme_section():
    """Sections moved to docs/: a `README, "Section"` pointer in the code would point at nothing."""
    stale = [str(path.relative_to(REPO)) for path in pointer_files() if re.search(r'README,?\s+"', code_text(path))]
    assert not stale, f"pointers to README sections (point at docs/<file>.md instead): {stale}"


def test_pointer_pattern_reads_wrapped_and_listed_sections(tmp_path):
    """The check above can fail: a pointer wrapped over comment lines, and one listing sections, are both read."""
    source = tmp_path / "x.py"
    source.write_text('# see (docs/a.md, "First part\n# of it", "Second" and "Third")\n', encoding="utf-8")
    match = POINTER.search(code_text(source))
    assert match and match.group(1) == "docs/a.md"
    assert re.findall(r'"([^"]+)"', match.group(2)) == ["First part of it", "Second", "Third"]
