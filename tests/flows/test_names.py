"""Names from other hands: any file name edits end to end; names and prompts never reach a terminal raw; the
local server's record is checked before anything is signalled."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from flows.text import printable
from flows.local_server import is_our_server
from tasks.ingest import asset_id_for
from tests.helpers import FAST_CONFIG, RunCli


def test_asset_ids_are_ascii_slugs_of_any_file_name() -> None:
    assert asset_id_for(Path("café.glb"), "0123456789") == "cafe-01234567"
    assert asset_id_for(Path("椅子.glb"), "abcdef0123") == "asset-abcdef01"
    assert asset_id_for(Path("my chair (2).glb"), "abcdef0123") == "my-chair--2-abcdef01"  # ASCII names: the id they had
    assert asset_id_for(Path("chair_v2-final.glb"), "abcdef0123") == "chair_v2-final-abcdef01"  # as before


@pytest.mark.usefixtures("prefect_api_url")
def test_files_named_with_accents_cjk_and_spaces_edit_end_to_end(cli: RunCli, shared_assets: Path, tmp_path: Path) -> None:
    config = FAST_CONFIG
    store = str(tmp_path / "store")
    for name in ("café.obj", "椅子 二.obj"):
        asset = tmp_path / name
        shutil.copy(shared_assets / "good" / "two_objects.obj", asset)
        edit = ["edit", str(asset), "--edit", "a photo of <asset0> in red", "--config", str(config), "--store", store, "--json"]
        result = cli(*edit, timeout=900)
        payload = json.loads(result.stdout)
        assert payload["asset_id"].isascii() and payload["outputs"]["edits"][0]["verdict"] == "noise: random model"
    rows = [{"asset": "椅子 二.obj", "edits": ["a photo of <asset1> in blue"]}]
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(rows, allow_unicode=True), encoding="utf-8")
    batch = cli("batch", str(tmp_path / "manifest.yaml"), "--config", str(config), "--store", store, "--json", timeout=900)
    assert json.loads(batch.stdout)["assets"][0]["status"] == "completed"


def test_names_and_prompts_never_reach_a_terminal_raw(cli: RunCli) -> None:
    title = "cube\x1b]0;owned\x07\x1b]52;c;ZWNobyBoaQ==\x07"
    assert "\x1b" not in printable(title) and "\x07" not in printable(title) and printable(title).startswith("cube\\x1b]0;")
    assert printable("a photo of <asset0> in café 红") == "a photo of <asset0> in café 红"  # printable text as it is
    refused = cli("edit", "x.glb", "--edit", "a photo of <asset0> in red\n\x1b[2J", "--store", "/nonexistent/store", check=False)
    assert refused.returncode == 2 and "control characters" in refused.stderr and "\x1b" not in refused.stderr


def test_server_stop_signals_only_the_server_its_record_names(cli: RunCli, tmp_path: Path) -> None:
    """A stale record whose pid now belongs to another process (here: this test's own) is not signalled."""
    assert not is_our_server({"pid": os.getpid(), "started": None})
    assert not is_our_server({"pid": 2**22 + 12345, "started": None})  # no such process
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "dreamedit3d-server.json").write_text(json.dumps({"url": "http://127.0.0.1:9/api", "pid": os.getpid(), "log": "x"}))
    env = {**os.environ, "PREFECT_HOME": str(home)}
    result = cli("server", "stop", "--json", env=env, timeout=60, check=False)
    assert json.loads(result.stdout) == {"stopped": False}  # and this process is alive to say so
