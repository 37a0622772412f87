"""Golden files: the exact text of a dialogue or a table, so a change of wording is a visible diff.

``assert_golden("name.md", text)`` compares with tests/render/golden/name.md. To accept a change on
purpose, run the tests with VMRB_UPDATE_GOLDEN=1 and review the diff of the golden files.
"""

import os
from pathlib import Path

GOLDEN = Path(__file__).parent / "render" / "golden"


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("VMRB_UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if os.environ.get("VMRB_UPDATE_GOLDEN") != "1":
            raise AssertionError(f"golden file {name} did not exist: written now; review it and run again")
        return
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from its golden file (VMRB_UPDATE_GOLDEN=1 to accept):\n{text}"
