"""Plots without a network: the real `dvc plots show` / `dvc plots diff`, with this project's .dvc/config and page
template, on a tiny repository, opened in headless Chromium that cannot fetch anything. (The README's figures,
drawn with matplotlib: test_render_figures.py.)"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TEMPLATE = Path(".dvc") / "plots" / "offline.html"
DVC_YAML = """\
plots:
  - Training loss:
      x: epoch
      y:
        a.csv: loss
        b.csv: loss
  - confusion.csv:
      template: confusion
      x: predicted
      y: actual
"""
N_PLOTS = 2
CHROMIUM_NAMES = ["chromium-headless-shell", "chromium", "chromium-browser",
                  "/usr/lib/chromium/chromium-headless-shell", "/usr/lib/chromium/chromium"]
# No background services, and no host name resolves (so no CDN, even on a machine online): a chart that
# draws was drawn from the page alone.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND"]


def run(command: list[str], cwd: Path) -> str:
    """Run a command with this Python's environment first on PATH (its dvc); its stdout, or a failure with stderr."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr}"
    return result.stdout


@pytest.fixture
def plots_repo(tmp_path, project_root) -> Path:
    """A git + DVC repository with this project's .dvc/config and page template, two loss curves and a confusion
    matrix, committed (so `dvc plots diff HEAD` has a revision to compare)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    shutil.copy(project_root / ".dvc" / "config", repo / ".dvc" / "config")
    (repo / TEMPLATE).parent.mkdir(exist_ok=True)
    shutil.copy(project_root / TEMPLATE, repo / TEMPLATE)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    for name, rate in [("a.csv", 0.5), ("b.csv", 0.8)]:
        losses = np.exp(-rate * np.arange(5))
        (repo / name).write_text("epoch,loss\n" + "".join(f"{e + 1},{l:.4f}\n" for e, l in enumerate(losses)))
    # Each row is one test image: 3 classes, mostly right.
    pairs = [(a, p) for a in range(3) for p in range(3) for _ in range(5 if a == p else 1)]
    (repo / "confusion.csv").write_text("actual,predicted\n" + "".join(f"{a},{p}\n" for a, p in pairs))
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "plots"], repo)
    return repo


def chromium() -> str:
    """The headless Chromium binary; a failure, not a skip, without one: CI installs it (.ci/run)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"no Chromium found (tried {', '.join(CHROMIUM_NAMES)}); "
                "install it: apt-get install chromium-headless-shell")


def rendered_dom(page: Path, profile_dir: Path) -> str:
    """The page's DOM after its scripts ran, as headless Chromium sees it."""
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
               "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    return run(command, page.parent)


@pytest.mark.parametrize("command", [["show"], ["diff", "HEAD"]], ids=["show", "diff"])
def test_plots_page_draws_every_chart_offline(plots_repo, tmp_path, command):
    run(["dvc", "plots", *command], plots_repo)
    page = plots_repo / "dvc_plots" / "index.html"
    remote_scripts = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?https?://[^>]*>", page.read_text())
    assert not remote_scripts, f"the page still loads scripts from the network: {remote_scripts}"

    # vega-embed draws each chart as one <svg class="marks">; a page whose scripts failed has none.
    charts = re.findall(r"<svg[^>]*\bclass=\"marks\"", rendered_dom(page, tmp_path / "chromium-profile"))
    assert len(charts) == N_PLOTS, f"{len(charts)} of {N_PLOTS} charts drew in {page}"
