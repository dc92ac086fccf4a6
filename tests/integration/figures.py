"""Figures the reliability tests measure, gathered for docs/reliability.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ARTIFACT = Path(__file__).resolve().parents[1] / "artifacts" / "reliability.json"


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Keep one test's figures under ``name`` in tests/artifacts/reliability.json."""
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
    saved[name] = figures
    ARTIFACT.write_text(json.dumps(saved, indent=2, sort_keys=True))
