"""The remedies across seeds with 95% intervals, from one committed file of runs.

    python scripts/remedies_report.py            # the runs file + the runs of HEAD's experiments (dvc exp show)
    python scripts/remedies_report.py --num 3    # ... and of the experiments of the two commits before HEAD
    python scripts/remedies_report.py --no-dvc   # from reports/remedies_runs.csv alone (a fresh clone)

The imbalance map is a report of its own, over the runs of its own variants (scripts/report/imbalance_map.py
VARIANTS), which the remedies' tables leave out: map.md, map.png and README's map block (before the map has
run: a sentence saying how to run it, and no map.png).

The runs `dvc exp show` finds are merged into reports/remedies_runs.csv, which is written back; the report:
remedies.md, summary.md, findings.md (also copied between their markers in README.md), remedies.csv (the test
table, unrounded), remedies.png (the forest plot), chosen.yaml (read by recipe.yaml's steps).
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the repo

from scripts.report import imbalance_map as IM, map_markdown as MM, markdown as md, runs as R  # noqa: E402
from scripts.report import tables as T  # noqa: E402
from scripts.sweep_git import this_python_first_on_path  # noqa: E402
from stages.lib import params as P  # noqa: E402
from stages.lib.files import atomic_path, write_text  # noqa: E402

OUTPUT_DIR, README, RUNS_FILE = Path("reports"), Path("README.md"), "remedies_runs.csv"


def build_report(runs: pd.DataFrame, params: dict, out: Path) -> dict[str, str]:
    """Writes the report of `runs` (with their settings) into `out`; returns README's blocks by marker name."""
    from scripts.report.figure import forest_figure  # matplotlib only here

    readme_blocks = build_map(runs, out)
    runs = runs[~runs["variant"].isin(IM.VARIANTS)]  # the map's runs are no remedies of these tables: map.md's
    validation = T.validation_table(runs)
    tested, table = T.test_runs(runs, validation), T.test_table(runs, params, validation)
    paired = T.paired_table(tested, table)
    texts = {"remedies.md": "\n\n".join([md.test_markdown(table), md.paired_markdown(paired),
                                         md.validation_markdown(validation)]) + "\n",
             "summary.md": md.short_markdown(table) + "\n", "findings.md": md.findings_markdown(table, paired) + "\n"}
    for name, text in texts.items():
        write_text(out / name, text)
    write_text(out / "chosen.yaml", "# What validation chose per remedy (scripts/remedies_report.py): the -S settings "
               "of its test runs\n" + yaml.safe_dump(T.chosen_settings(validation), sort_keys=False))
    with atomic_path(out / "remedies.csv") as tmp:
        table.drop(columns=["record", "validation"]).to_csv(tmp, index_label="row")
    with atomic_path(out / "remedies.png") as tmp:
        forest_figure(table, T.seed_results(tested, table)).savefig(tmp, format="png", metadata={"Software": None})
    return {"summary.md": texts["summary.md"], "findings.md": texts["findings.md"], **readme_blocks}


def build_map(runs: pd.DataFrame, out: Path) -> dict[str, str]:
    """Writes the imbalance map of `runs` (map.md, and map.png when the map has runs) into `out`; returns
    README's map block. Without map runs an older map.png is left as it is: the runs file keeps every run it
    ever held, so that happens only before the map's first run (or to a runs file cut by hand)."""
    imbalance_map = IM.build_map(runs)
    write_text(out / "map.md", MM.map_markdown(imbalance_map))
    if imbalance_map is not None:
        from scripts.report.map_figure import map_figure  # matplotlib only here

        with atomic_path(out / "map.png") as tmp:
            map_figure(imbalance_map).savefig(tmp, format="png", metadata={"Software": None})
    return {"map.md": MM.readme_block(imbalance_map)}


def update_readme(path: Path, texts: dict[str, str]) -> list[str]:
    """Puts each text between its markers (`<!-- summary.md: begin -->`...); returns the blocks rewritten."""
    readme, done = (path.read_text() if path.exists() else ""), []
    for name, text in texts.items():
        begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
        if readme.count(begin) == 1 and readme.count(end) == 1 and readme.index(begin) < readme.index(end):
            head, rest = readme.split(begin)
            readme, done = f"{head}{begin}\n{text}{end}{rest.split(end, 1)[1]}", [*done, name]
    if done:
        write_text(path, readme)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", nargs="+", default=["HEAD"], help="the commits whose experiments are collected")
    parser.add_argument("--num", type=int, default=1, help="also the NUM-1 commits before each of them")
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR, help=f"output directory, with {RUNS_FILE}")
    parser.add_argument("--no-dvc", action="store_true", help=f"do not run `dvc exp show`: {RUNS_FILE} alone")
    args = parser.parse_args()
    this_python_first_on_path()  # its `dvc exp show`
    params = P.read_params()
    P.variants(params)  # a clear error for a broken params.yaml
    committed = R.read_runs(args.out / RUNS_FILE)
    found = pd.DataFrame(columns=R.COLUMNS) if args.no_dvc else R.collect_runs(R.exp_show(args.rev, args.num))
    runs = R.merge_runs(committed, found)
    if runs.empty:
        raise SystemExit("no finished runs found: run `dvc repro` or `python scripts/sweep.py run all` first")
    runs = R.with_settings(runs, params)  # in table order: a rewrite of the same runs is byte-equal
    with atomic_path(args.out / RUNS_FILE) as tmp:
        runs[R.COLUMNS].to_csv(tmp, index=False)
    texts = build_report(runs, params, args.out)
    print(texts["summary.md"], end="")
    if args.out == OUTPUT_DIR and (blocks := update_readme(README, texts)):
        print(f"{README}: rewrote the blocks {blocks}", file=sys.stderr)
    print(f"{len(runs)} runs ({len(found)} from dvc exp show, before merging) -> {args.out}/", file=sys.stderr)


if __name__ == "__main__":
    main()
