"""The operator's documents stay true: every message the troubleshooting page quotes is one PRSM
still prints, and every page the README and the guides link to exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = "\n".join(
    p.read_text() for p in [*(REPO / "prsm").rglob("*.py"), *(REPO / "deployments").rglob("*.py")]
)


def fragments(message: str) -> list[str]:
    """The fixed parts of a quoted message (`…` stands for what varies)."""
    return [part.strip(" .:") for part in message.split("…") if len(part.strip(" .:")) >= 6]


def test_every_troubleshooting_message_is_printed_by_prsm():
    page = (REPO / "docs" / "troubleshooting.md").read_text()
    headings = [h.strip("` ") for h in re.findall(r"^### (`.+`)$", page, flags=re.MULTILINE)]
    assert len(headings) >= 20
    for message in headings:
        parts = fragments(message)
        assert parts, message
        for part in parts:
            assert part in SOURCE, f"troubleshooting.md quotes {message!r}, but no PRSM source says {part!r}"


def test_docs_link_only_to_pages_that_exist():
    for doc in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(((?!https?:)[^)#]+)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
