"""README.md and the pages under docs/ against the repository: every relative link points at a file that
exists, and README.md carries, once each, the markers between which scripts/remedies_report.py writes its
blocks (a README without them would silently stop being updated)."""

import re
from pathlib import Path

import pytest

from scripts import remedies_report
from scripts.report import imbalance_map, map_markdown, runs

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
# [text](target) and ![alt](target); a target is up to the first space or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
COPIES = ["findings.md", "summary.md"]  # README's blocks that are copies of the report's files of their name
BLOCKS = [*COPIES, "map.md"]  # what the report writes into README.md (its update_readme)


def relative_links(page: Path) -> list[str]:
    """The link targets of `page` that are paths in the repository (no scheme, no bare #anchor), anchors cut."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # code blocks hold no links
    targets = [target.split("#", 1)[0] for target in LINK.findall(text)]
    return [target for target in targets if target and not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_the_link_pattern_finds_links():
    assert relative_links(ROOT / "README.md"), "no relative link found in README.md: the pattern no longer matches"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file(page):
    missing = [target for target in relative_links(page) if not (page.parent / target).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_readme_has_each_report_block_between_its_markers_once(tmp_path):
    readme = (ROOT / "README.md").read_text()
    expected = readme
    for name in BLOCKS:
        begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
        assert readme.count(begin) == 1 and readme.count(end) == 1 and readme.index(begin) < readme.index(end), name
        expected = re.sub(rf"{re.escape(begin)}\n.*?{re.escape(end)}", f"{begin}\nx\n{end}", expected, flags=re.DOTALL)
    # The report's own function finds every block and rewrites nothing outside them.
    copy = tmp_path / "README.md"
    copy.write_text(readme)
    assert sorted(remedies_report.update_readme(copy, {name: "x\n" for name in BLOCKS})) == sorted(BLOCKS)
    assert copy.read_text() == expected


def test_readme_blocks_are_what_the_report_wrote():
    """README's copy of each block is byte for byte the file the report wrote into reports/."""
    readme = (ROOT / "README.md").read_text()
    block = lambda name: readme.split(f"<!-- {name}: begin -->\n", 1)[1].split(f"<!-- {name}: end -->", 1)[0]  # noqa
    stale = "block is stale: run `python scripts/remedies_report.py --no-dvc`"
    for name in COPIES:
        assert block(name) == (ROOT / "reports" / name).read_text(), f"README.md's {name} {stale}"
    # The map's block is its sentences and figure (reports/map.md holds the tables), from the runs file.
    the_map = imbalance_map.build_map(runs.read_runs(ROOT / "reports" / "remedies_runs.csv"))
    assert block("map.md") == map_markdown.readme_block(the_map), f"README.md's map.md {stale}"


# --- the README's test command is CI's ------------------------------------------------------------------------

def readme_test_command() -> str:
    """The Quick start's command 2, found as .ci/run finds it: the first line starting scripts/setup_tests.sh."""
    lines = [line for line in (ROOT / "README.md").read_text().splitlines()
             if line.startswith("scripts/setup_tests.sh")]
    assert len(lines) == 1, "README.md must have exactly one test command starting with scripts/setup_tests.sh"
    return lines[0]


def test_ci_runs_the_readme_test_command_as_written():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 '^scripts/setup_tests.sh' README.md" in ci and 'bash -c "$readme_command"' in ci
    assert readme_test_command().endswith("-m pytest")


def test_the_setup_installs_every_extra_the_tests_import():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    setup = (ROOT / "scripts" / "setup_tests.sh").read_text()
    installed = set(re.findall(r"\.\[([a-z,]+)\]", setup))
    assert installed == {"cpu,test,report,remote", "gpu,test,report,remote"}
    # The Paddle builds are chosen one at a time; bench (PyTorch) is for benchmarks/ only.
    assert extras - {"cpu", "gpu", "bench"} == {"test", "report", "remote"}
