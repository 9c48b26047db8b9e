"""`leadpilot kb ingest` on a folder: every file ingested once, with a progress line each."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from leadpilot.cli import app
from models.ai import KnowledgeBase, TrainingData
from models.db import owner_session

pytestmark = pytest.mark.integration


def test_kb_ingest_a_folder_then_again(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text("question,answer\nDo you sell gift cards?,Yes, from $25 at the host stand.\n")
    (tmp_path / "story.md").write_text("# Our story\n\nFounded in 1998 by the Moretti family in Brooklyn.\n")
    (tmp_path / "ignored.docx").write_text("not a supported type")
    name = f"CLI {uuid.uuid4().hex[:6]}"
    runner = CliRunner()
    first = runner.invoke(app, ["kb", "ingest", str(tmp_path), "--kb", name, "--sub-account", "restaurant-b"])
    assert first.exit_code == 0, first.output
    assert "faq.csv: 1 chunks" in first.output and "story.md: 1 chunks" in first.output
    again = runner.invoke(app, ["kb", "ingest", str(tmp_path), "--kb", name, "--sub-account", "restaurant-b"])
    assert again.exit_code == 0 and again.output.count("(unchanged)") == 2
    with owner_session() as session:
        kb_id = session.scalar(select(KnowledgeBase.id).where(KnowledgeBase.name == name))
        assert session.scalar(select(func.count()).where(TrainingData.knowledge_base_id == kb_id)) == 2
    bad = runner.invoke(app, ["kb", "ingest", str(tmp_path), "--kb", name, "--sub-account", "nowhere"])
    assert bad.exit_code != 0
