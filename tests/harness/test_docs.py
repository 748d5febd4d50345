"""The README is a door and docs/ stays in step with the code: pure checks of the Markdown files, no pytest run.

- README.md stays under 10 KiB and opens with the two set-up commands (CI and people copy them);
- its wrapper table, and the PyTorch-attribute table in docs/pytorch-style-suites.md, are the registry's
  own text (``harness.wrappers.BUILTIN_WRAPPERS``, in order): a new wrapper fails here until the tables
  are updated, and the failure prints the rows to paste (``python tests/harness/test_docs.py`` prints them too);
- every relative link in README.md and docs/*.md points to an existing file, and to an existing heading
  when it names one; every docs/ page is reachable from the README.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.wrappers import BUILTIN_WRAPPERS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted([README, *DOCS.glob("*.md")])
MAX_README_BYTES = 10 * 1024
COMMANDS = (
    "python3 -m pip install -r requirements/nox.txt && nox -s serdes_strict",
    "python3 -m pip install -r requirements/nox.txt && nox -s tests",
)
WRAPPER_TABLE_MARKER = "<!-- wrapper table:"
PYTORCH_TABLE_MARKER = "<!-- pytorch table:"
PYTORCH_PAGE = DOCS / "pytorch-style-suites.md"

_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def wrapper_table() -> list[str]:
    """The README's wrapper table, rendered from the registry."""
    rows = ["| name | tags | what it does to each program |", "|---|---|---|"]
    rows += [f"| `{w.name}` | {', '.join(w.tags)} | {w.description} |" for w in BUILTIN_WRAPPERS]
    return rows


def pytorch_table() -> list[str]:
    """Each wrapper's expected-failure attribute, compat suffix and variant class, rendered from the registry."""
    rows = ["| wrapper | attribute | `--pytorch-compat` suffix | variant class |", "|---|---|---|---|"]
    for w in BUILTIN_WRAPPERS:
        # As harness.compat.variant_class names it for a test class named TestExport.
        variant = f"{w.pytorch_class_prefix}TestExport" if w.pytorch_class_prefix else f"TestExport{w.pytorch_suffix}"
        rows.append(f"| `{w.name}` | `{w.pytorch_xfail_attr}` | `{w.pytorch_suffix}` | `{variant}` |")
    return rows


def prose_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def table_after(text: str, marker: str) -> list[str]:
    """The Markdown table that starts on the line after the one holding ``marker``."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(marker)]
    assert len(starts) == 1, f"expected one line starting with {marker!r}, found {len(starts)}"
    table = []
    for line in lines[starts[0] + 1 :]:
        if not line.startswith("|"):
            break
        table.append(line.rstrip())
    return table


def first_code_block(text: str) -> list[str]:
    """The lines inside the first fenced code block."""
    block: list[str] | None = None
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            if block is not None:
                return block
            block = []
        elif block is not None:
            block.append(line)
    raise AssertionError("no fenced code block")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _CODE_SPAN.sub(lambda m: m[0].strip("`"), heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading in ``path`` (repeated headings get GitHub's -1, -2 suffixes)."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if match:
            base = slug(match[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    """The targets of the Markdown links in ``path``, outside code blocks and code spans."""
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        targets += _LINK.findall(_CODE_SPAN.sub("", line))
    return targets


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None


def test_readme_is_at_most_10_kib() -> None:
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes; move detail into docs/ (limit {MAX_README_BYTES})"


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.startswith("# "), "README.md starts with its title"
    block = first_code_block(text)
    commands = [line.split("#", 1)[0].strip() for line in block if line.strip()]
    assert commands == list(COMMANDS)
    # Nothing but the title comes before them.
    before = text[: text.index("```")].strip().splitlines()
    assert len(before) == 1, f"only the title may precede the two commands, found {before}"


def test_readme_wrapper_table_is_the_registry() -> None:
    expected = wrapper_table()
    actual = table_after(README.read_text(encoding="utf-8"), WRAPPER_TABLE_MARKER)
    assert actual == expected, "README.md's wrapper table differs from the registry; paste:\n" + "\n".join(expected)


def test_pytorch_attribute_table_is_the_registry() -> None:
    expected = pytorch_table()
    actual = table_after(PYTORCH_PAGE.read_text(encoding="utf-8"), PYTORCH_TABLE_MARKER)
    assert actual == expected, f"{PYTORCH_PAGE.name}'s table differs from the registry; paste:\n" + "\n".join(expected)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / file_part).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with anchor #{anchor} in {destination.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(README) if not is_external(t)}
    orphans = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not orphans, f"docs pages the README's contents do not link: {orphans}"


def test_slug_follows_github() -> None:
    assert slug("Across torch versions: `nox -s torch_matrix`") == "across-torch-versions-nox--s-torch_matrix"
    assert slug("The OpInfo sweep: `tests/ops`") == "the-opinfo-sweep-testsops"
    assert slug("Dependencies and why") == "dependencies-and-why"


if __name__ == "__main__":
    print("\n".join(wrapper_table()), end="\n\n")
    print("\n".join(pytorch_table()))
