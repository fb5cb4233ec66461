"""Golden-file comparison shared by the render tests."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden" / "render"


def assert_matches_golden(name: str, files: list[tuple[str, str]]) -> None:
    """``files`` (name, text) equal the folder ``golden/render/NAME``, file for file.

    With EKSPLAIN_REGEN_GOLDEN=1 the folder is rewritten first (after an intended change;
    review the diff)."""
    folder = GOLDEN / name
    if os.environ.get("EKSPLAIN_REGEN_GOLDEN") == "1":
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for file_name, text in files:
            (folder / file_name).write_text(text, encoding="utf-8")
    assert sorted(p.name for p in folder.iterdir()) == sorted(n for n, _ in files)
    for file_name, text in files:
        assert (folder / file_name).read_text(encoding="utf-8") == text, file_name
