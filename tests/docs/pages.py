"""The pages the docs tests read: the README and the user guide (the first toctree of
docs/index.md, so a page added there is read too), and their fenced Python blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

# <!-- docs-test: compile-only (why) --> on the line above a block: a fragment, compiled only.
COMPILE_ONLY = re.compile(r"<!--\s*docs-test:\s*compile-only\b.*-->")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)\s*(?P<info>[^\s`]*)")


def toctree(caption: str) -> list[Path]:
    """The pages of the toctree of docs/index.md whose caption is ``caption``."""
    text = (DOCS / "index.md").read_text()
    for block in re.findall(r"```\{toctree\}\n(.*?)```", text, flags=re.S):
        if f":caption: {caption}" in block:
            names = [line.strip() for line in block.splitlines()]
            return [DOCS / f"{name}.md" for name in names if name and not name.startswith(":")]
    raise LookupError(f"docs/index.md has no toctree captioned {caption!r}")


def user_pages() -> list[Path]:
    """The README and every page of the user guide."""
    return [README, *toctree("User guide")]


def all_pages() -> list[Path]:
    """The README and every Markdown page of docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def name(page: Path) -> str:
    """A page's path from the repository root."""
    return str(page.relative_to(ROOT))


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    compile_only: bool

    @property
    def where(self) -> str:
        """``page:line``, for test ids and messages."""
        return f"{name(self.page)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, its code dedented to the fence's indent."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        code = "\n".join(line[len(indent) :] for line in lines[i + 1 : end])
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        found.append(Block(page, i + 1, info, code + "\n", bool(COMPILE_ONLY.search(above))))
        i = end + 1
    return found


def python_blocks(pages: list[Path]) -> list[Block]:
    """The Python blocks of ``pages``."""
    return [b for page in pages for b in blocks(page) if b.language in ("python", "py")]


def table(page: Path, header_start: str) -> list[list[str]]:
    """The rows (cells stripped, separator dropped) of the first table of ``page`` whose
    header row starts with ``header_start``."""
    lines = page.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not all(set(cell) <= set("-: ") for cell in cells):
            rows.append(cells)
    return rows
