"""dvc.yaml against the code: each stage declares exactly the code it runs, and spells its files as
stages/lib/paths.py does. Read from the source text (ast) and dvc.yaml (yaml), not by importing, so the
check sees what `python -m stages.<name>` would load."""

import ast
from pathlib import Path

import pytest
import yaml

from stages.lib import paths

ROOT = Path(__file__).resolve().parent.parent
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]
LIB = "stages.lib"
# What ${key} and ${item.train_set} are replaced with, to compare dvc.yaml's templates with paths.py's functions.
VARIANT, TRAIN_SET = "VARIANT", "TRAIN_SET"
# The files each stage reads and writes besides code, as paths.py computes them; dvc.yaml must spell these.
DATA_DEPS = {
    "download": set(),
    "subset": {paths.RAW_DIR},
    "train": {paths.RAW_DIR, paths.train_set_path(TRAIN_SET)},
    "evaluate": {paths.RAW_DIR, paths.model_path(VARIANT), paths.train_summary_path(VARIANT),
                 paths.validation_set_path(TRAIN_SET)},
}
OUTPUTS = {
    "download": {paths.RAW_DIR},
    "subset": {paths.TRAIN_SET_DIR, paths.VALIDATION_DIR, paths.SUBSET_METRICS},
    "train": {paths.model_path(VARIANT), paths.train_summary_path(VARIANT), paths.train_log_path(VARIANT)},
    "evaluate": {paths.test_metrics_path(VARIANT), paths.confusion_path(VARIANT)},
}


def module_file(module: str) -> Path:
    """stages.lib.data -> stages/lib/data.py (relative to the repository root)."""
    return Path(*module.split(".")).with_suffix(".py")


def imported_modules(source: str) -> set[str]:
    """The stages.lib modules that `source` imports: `import stages.lib.x`, `from stages.lib.x import ...` and
    `from stages.lib import x`."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith(LIB + ".")}
        elif isinstance(node, ast.ImportFrom) and node.module == LIB:
            found |= {f"{LIB}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(LIB + "."):
            found.add(node.module)
    return found


def code_files(script: str, root: Path = ROOT) -> set[str]:
    """The stage script and every stages.lib module it imports, transitively, as repository paths.

    The package __init__ files are left out, as in dvc.yaml: they hold docstrings and a warnings filter,
    nothing a stage's output depends on.
    """
    files, todo = {script}, [script]
    while todo:
        for module in imported_modules((root / todo.pop()).read_text()):
            path = module_file(module).as_posix()
            if path not in files:
                files.add(path)
                todo.append(path)
    return files


def stage(name: str) -> dict:
    """A stage of dvc.yaml; for a foreach stage, its `do` template."""
    return STAGES[name].get("do", STAGES[name])


def declared(entries: list) -> set[str]:
    """The paths of a deps/outs/metrics/plots list, whose items are a path or {path: options}."""
    return {entry if isinstance(entry, str) else next(iter(entry)) for entry in entries or []}


def filled(template: str) -> Path:
    return Path(template.replace("${key}", VARIANT).replace("${item.train_set}", TRAIN_SET))


def test_dvc_yaml_has_the_four_stages():
    assert set(STAGES) == set(DATA_DEPS) == {"download", "subset", "train", "evaluate"}


@pytest.mark.parametrize("name", sorted(DATA_DEPS))
def test_stage_declares_exactly_the_code_it_imports(name):
    script = f"stages/{name}.py"
    assert stage(name)["cmd"].startswith(f"python -m stages.{name}")
    code_deps = {dep for dep in declared(stage(name)["deps"]) if dep.startswith("stages/")}
    assert code_deps == code_files(script), (
        f"dvc.yaml lists {sorted(code_deps - code_files(script))} that {script} does not import, and misses "
        f"{sorted(code_files(script) - code_deps)}")


@pytest.mark.parametrize("name", sorted(DATA_DEPS))
def test_stage_data_deps_are_the_paths_of_paths_py(name):
    data_deps = {filled(dep) for dep in declared(stage(name)["deps"]) if not dep.startswith("stages/")}
    assert data_deps == DATA_DEPS[name]


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_stage_outputs_are_the_paths_of_paths_py(name):
    outputs = {filled(path) for kind in ("outs", "metrics", "plots") for path in declared(stage(name).get(kind))}
    assert outputs == OUTPUTS[name]


def test_top_level_plots_name_training_logs_of_existing_variants():
    variants = yaml.safe_load((ROOT / "params.yaml").read_text())["variants"]
    for plot in DVC_YAML["plots"]:
        (options,) = plot.values()
        for path in options["y"]:
            assert Path(path) in {paths.train_log_path(name) for name in variants}, path


def test_evaluate_does_not_depend_on_the_training_sets():
    # It learns the class prior and minority digits from the training summary; see tests/test_evaluate.py.
    for dep in declared(stage("evaluate")["deps"]):
        assert not filled(dep).is_relative_to(paths.TRAIN_SET_DIR), dep


def test_code_files_follows_every_import_form(tmp_path):
    """The scanner itself: each import form counts, and what an imported module imports counts too."""
    (tmp_path / "stages" / "lib").mkdir(parents=True)
    (tmp_path / "stages" / "s.py").write_text("import stages.lib.a\nfrom stages.lib import b\n")
    (tmp_path / "stages" / "lib" / "a.py").write_text("from stages.lib.c import thing\n")
    (tmp_path / "stages" / "lib" / "b.py").write_text("import os\n")
    (tmp_path / "stages" / "lib" / "c.py").write_text("thing = 1\n")
    assert code_files("stages/s.py", tmp_path) == {"stages/s.py", "stages/lib/a.py", "stages/lib/b.py",
                                                   "stages/lib/c.py"}
