"""One name, one home: the remedies and samplers that params.yaml names are the registries' records, every
variant resolves against them, and no stage code singles a remedy or a sampler out by its name."""

import ast
from pathlib import Path

import pytest
from stage_project import with_keys

from stages.lib import params as P
from stages.lib.remedies import REMEDIES
from stages.lib.samplers import SAMPLERS
from stages.lib.variants import Variant, load_variant, load_variants

ROOT = Path(__file__).resolve().parent.parent
NAMES = set(REMEDIES) | set(SAMPLERS)


@pytest.fixture
def params(project_root) -> dict:
    return P.read_params(project_root / "params.yaml")


def test_losses_of_params_yaml_are_the_remedies(params):
    assert list(params["losses"]) == list(REMEDIES)  # the same names, in the same order


@pytest.mark.parametrize("name", sorted(REMEDIES))
def test_each_remedy_loads_its_entry_of_params_yaml(params, name):
    entry = params["losses"][name] or {}
    loaded = P.from_mapping(REMEDIES[name].params, entry, prefix=f"losses.{name}")
    assert isinstance(loaded, REMEDIES[name].params)
    assert {key: getattr(loaded, key) for key in entry} == {
        key: tuple(value) if isinstance(value, list) else value for key, value in entry.items()}


def test_every_variant_of_params_yaml_resolves_to_the_registry_records(params):
    variants = load_variants(params)
    assert list(variants) == list(params["variants"])
    for name, variant in variants.items():
        settings = params["variants"][name]
        assert isinstance(variant, Variant) and variant.name == name
        assert variant.remedy is REMEDIES[settings["loss"]]
        assert variant.sampler is SAMPLERS[settings.get("sampler", "shuffle")]
        assert isinstance(variant.loss_params, variant.remedy.params)


def test_every_sampler_named_in_params_yaml_is_registered(params):
    named = {settings.get("sampler", "shuffle") for settings in params["variants"].values()}
    assert named <= set(SAMPLERS) and "class_balanced" in named


def test_every_remedy_is_used_by_a_variant(params):
    # Otherwise its params.yaml entry would never be read, and a typo in it never caught.
    assert {settings["loss"] for settings in params["variants"].values()} == set(REMEDIES)


def test_load_variant_names_the_variants_when_it_does_not_know_one(params):
    assert load_variant(params, "focal").loss == "focal_curriculum"
    with pytest.raises(P.ParamsError, match=r"--variant 'focall' is not in params.yaml `variants` \(\['baseline'"):
        load_variant(params, "focall")


def test_a_bad_losses_entry_fails_every_variant_not_only_its_own(params):
    # A stage loads every variant, so a bad entry stops train@baseline too, before any work.
    with pytest.raises(P.ParamsError, match=r"losses\.ldam_drw\.scale"):
        load_variant(with_keys(params, {"losses.ldam_drw.scale": -1.0}), "baseline")


def test_a_variant_may_leave_out_the_sampler_and_gets_shuffle(params):
    variants = load_variants(with_keys(params, {"variants": {"only": {"train_set": "full", "loss": "focal",
                                                                      "epochs": 2}}}))
    assert variants["only"].sampler is SAMPLERS["shuffle"] and variants["only"].epochs == 2


# --- no special case by name -------------------------------------------------------------------------------

def special_cases(source: str) -> list[str]:
    """Comparisons of a value with a remedy or sampler name (==, !=, in, not in), as `line: code`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        names = {constant.value for operand in operands
                 for constant in ([operand] if isinstance(operand, ast.Constant) else getattr(operand, "elts", []))
                 if isinstance(constant, ast.Constant) and constant.value in NAMES}
        if names and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_stage_code_compares_with_a_remedy_or_sampler_name():
    # What a remedy or sampler needs is in its record; `if loss == "ldam_drw"` would be a second home.
    found = {str(path.relative_to(ROOT)): special_cases(path.read_text())
             for path in sorted((ROOT / "stages").rglob("*.py"))}
    assert {path: lines for path, lines in found.items() if lines} == {}


@pytest.mark.parametrize("code", ['if variant.loss == "ldam_drw":\n    pass\n',
                                  'scale = 30.0 if "focal" != name else None\n',
                                  'resample = settings.sampler in ("class_balanced",)\n'])
def test_the_special_case_scan_finds_each_form(code):
    assert len(special_cases(code)) == 1
