"""The benchmark's entry point runs: ``python -m bench compare`` on a real server, then
``python -m bench report`` on what it wrote. A guard against the tool rotting, not a
measurement: one short scenario on py-memory, checked for delivery, not for speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_compare_then_report(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = bench("compare", "--quick", "--setups", "py-memory", "--only", "smoke", "--out", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    [row] = result["rows"]
    assert (row["setup"], row["scenario"], row["ok"]) == ("py-memory", "smoke", True)
    assert row["delivered"] == row["published"] > 0
    shown = bench("report", str(out))
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "| smoke | py-memory | 0 |" in shown.stdout


def test_unknown_setup_is_refused_before_anything_starts() -> None:
    run = bench("compare", "--setups", "py-nothing")
    assert run.returncode == 2
    assert "invalid choice: 'py-nothing'" in run.stderr


def test_a_short_soak_reports_memory_back_at_baseline(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = bench(
        "soak",
        *("--minutes", "0.1", "--warmup", "2", "--quiet", "45", "--subscribers", "4"),
        *("--churners", "2", "--rate", "5", "--out", str(out)),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [s["label"] for s in result["samples"]] == ["baseline", "load 0.1m", "quiet"]
    assert result["counts"]["cycles"] > 10 and result["counts"]["errors"] == 0
    # Churned clients said goodbye and their publish tokens expired: no key is left.
    assert result["growth"]["redis_keys_but_tokens"] == 0
    assert all(kib > 0 for kib in result["samples"][0]["rss_kib"])
