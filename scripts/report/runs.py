"""Runs: one row per run, identified by the record evaluate writes in metrics/<variant>.json (block `run`).
A run's setting is what its params change from params.yaml here; its name is rendered from that."""

import dataclasses
import json
import math
import subprocess
import sys

import pandas as pd

from stages.lib import params as P

IDENTITY = ["variant", "seed", "validation", "per_batch", "tau", "params"]
METRICS = ["accuracy", "balanced_accuracy", "minority_accuracy", "majority_accuracy", "roc_auc",
           "logit_adjusted.accuracy", "logit_adjusted.balanced_accuracy", "logit_adjusted.minority_accuracy",
           "logit_adjusted.majority_accuracy", "distinct_minority_seen", "epochs", "test_loss"]
COLUMNS = [*IDENTITY, *METRICS, "experiment"]
ADDED_METRICS = ("roc_auc",)  # metrics a runs file written before them lacks (read as not measured)
KIND = ("train_set", "loss", "sampler")  # what a variant trains: two variants of one kind differ only in params
TAU_KEY = "evaluate.logit_adjustment_tau"  # a change of the run's tau is shown under this key
LOSS_NAMES = {"cross_entropy": "cross-entropy", "class_balanced": "class-balanced", "ldam_drw": "LDAM-DRW",
              "logit_adjusted": "logit-adjusted loss", "crt": "cRT"}  # others: their key, spaced
PROFILE_WORDS = {"exponential": "long-tailed"}  # the subset's profile as names and titles say it
# The hyperparameters a name always shows, by loss, with their short names; other params only when changed.
SHOWN = {"focal": {"gamma": "gamma"}, "focal_curriculum": {"gammas": "gamma"}, "class_balanced": {"beta": "beta"},
         "logit_adjusted": {"tau": "tau"}, "ldam_drw": {"scale": "s", "max_margin": "margin"},
         "crt": {"classifier_share": "classifier share"}}
# How a name writes a changed param, by its last key and value (None: any value); others as `key value`.
WORDS = {("warmup_epochs", 0): "no warm-up", ("drw_start", 1): "no DRW", ("augment_shift_px", 0): "no shifts",
         ("warmup_epochs", 1): "warm-up 1 epoch", ("warmup_epochs", None): "warm-up {:g} epochs",
         ("augment_shift_px", None): "shifts of ±{:g} px", ("grad_clip_norm", None): "gradients clipped at norm {:g}",
         ("drw_start", None): "DRW from {:g} of the epochs", ("detach_factor", True): "factor detached",
         ("detach_factor", False): "factor not detached"}
HEAD_ALONE = {"losses.ldam_drw.max_margin": 0, "losses.ldam_drw.drw_start": 1}  # LDAM's cosine classifier alone
IMPLIED = ("epochs", "epochs_per_gamma", "logit_adjustment_tau", "sampler")  # the name shows them otherwise


def exp_show(revs: list[str], num: int) -> list[dict]:
    """`dvc exp show --json` of the commits `revs` (and NUM - 1 before each) with their experiments."""
    command = ["dvc", "exp", "show", "--json", "--num", str(num), *(f"--rev={rev}" for rev in revs)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def read_runs(path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    runs = pd.read_csv(path, dtype={"variant": str, "params": str})
    # A metric that evaluate began to write after the file's runs (roc_auc): they did not measure it.
    runs = runs.assign(**{metric: math.nan for metric in ADDED_METRICS if metric not in runs})
    if missing := [column for column in COLUMNS if column not in runs]:
        raise SystemExit(f"{path}: no column {missing[0]}; expected {COLUMNS}")
    return runs[COLUMNS]


def commits_and_experiments(states: list[dict]):
    """The commits of `dvc exp show --json` and, after each, its experiments."""
    for state in states:
        yield state
        for experiment in state.get("experiments") or []:
            yield from experiment.get("revs") or []


def collect_runs(states: list[dict]) -> pd.DataFrame:
    """One row per metrics file with a run record in `dvc exp show --json` (the tabular view drops a file's name
    from columns no other file has, and turns booleans into text)."""
    records = []
    for state in commits_and_experiments(states):
        name = state.get("name") or (state["rev"][:7] if len(state["rev"]) == 40 else state["rev"])
        for content in ((state.get("data") or {}).get("metrics") or {}).values():
            data = _flatten((content or {}).get("data") or {})
            if "run.variant" in data and isinstance(data.get("accuracy"), (int, float)):
                records.append({**{field: data[f"run.{field}"] for field in IDENTITY[:5]}, "experiment": name,
                                "params": json.dumps((content["data"]["run"]["params"]), sort_keys=True),
                                **{metric: data.get(metric) for metric in METRICS}})
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def merge_runs(committed: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """One row per identity: copies of one run (experiments carry stale copies of other variants' files) are
    one run; of a run redone with other results (newer code), the one dvc finds now replaces the older."""
    runs = pd.concat([part for part in (found, committed) if len(part)] or [committed], ignore_index=True)
    runs = runs.drop_duplicates(IDENTITY + METRICS)
    redone = runs.duplicated(IDENTITY)
    for row in runs[redone].itertuples():
        print(f"dropped {row.variant} seed {row.seed} of {row.experiment}: the same run found now gave other "
              "results and is kept", file=sys.stderr)
    return runs[~redone].reset_index(drop=True)


def _flatten(node: dict, prefix: str = "") -> dict:
    return {key: value for name, child in node.items() for key, value in
            (_flatten(child, f"{prefix}{name}.") if isinstance(child, dict) else {prefix + name: child}).items()}


def defaults(params: dict) -> dict:
    """params.yaml flattened as a run record is (`losses.focal.gamma`), variants completed by the defaults of
    their dataclass (a variant's sampler is `shuffle` unless it says otherwise)."""
    flat = _flatten(params)
    for name, variant in P.variants(params).items():
        for key, value in dataclasses.asdict(variant).items():
            flat.setdefault(f"variants.{name}.{key}", value)
    return flat


def changes(record: dict, tau: float, flat: dict) -> dict:
    """What a run's record changes from params.yaml (flattened; the protocol is a column of its own). A variant
    with a warm-up of its own records it twice (its entry, and the train section it trained with): only its
    entry counts."""
    own_warmup = any(key.startswith("variants.") and key.endswith(".warmup_epochs") for key in record)
    found = {key: value for key, value in sorted(record.items())
             if key in flat and key != "subset.mode" and _plain(value) != _plain(flat[key])
             and not (own_warmup and key == "train.warmup_epochs")}
    return found | ({TAU_KEY: tau} if not math.isclose(tau, flat[TAU_KEY]) else {})


def kind(get, variant: str) -> tuple:
    """The KIND of `variant`, its params read with `get` (a record's or flattened params.yaml's)."""
    return tuple(get(f"variants.{variant}.{field}") for field in KIND)


def with_settings(runs: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The runs plus changes (against params.yaml), setting (their JSON), base (the setting without the tau),
    the KIND columns, protocol and order (params.yaml's; an added variant after the first of its kind)."""
    flat, names = defaults(params), list(params["variants"])
    records = [json.loads(text) for text in runs["params"]]
    changed = [changes(record, tau, flat) for record, tau in zip(records, runs["tau"])]
    kinds = [kind(record.get, variant) for record, variant in zip(records, runs["variant"])]
    runs = runs.assign(record=records, changes=changed, setting=[json.dumps(c, sort_keys=True) for c in changed],
                       base=[json.dumps({k: v for k, v in c.items() if k != TAU_KEY}, sort_keys=True)
                             for c in changed], **{field: [k[i] for k in kinds] for i, field in enumerate(KIND)})
    runs["protocol"] = ["full" if t == "full" else "per_batch" if pb else "fixed"
                        for t, pb in zip(runs["train_set"], runs["per_batch"])]
    extends = {kind(flat.get, name): i + 0.5 for i, name in reversed(list(enumerate(names)))}
    runs["order"] = [names.index(v) if v in names else extends.get(k, len(names))
                     for v, k in zip(runs["variant"], kinds)]
    runs["changed"] = runs["setting"] != "{}"
    return runs.sort_values(["order", "variant", "changed", "setting", "protocol", "validation", "seed"],
                            kind="stable").reset_index(drop=True)


def run_name(row, in_panel: bool = False) -> str:
    """`LDAM-DRW, s 20, margin 0.25, 10 epochs`: the loss, its main hyperparameters, what else changed, from a
    table row (variant, record, changes, epochs, protocol, tau, posthoc); `in_panel`: without the profile and
    epochs, which the figure's panel title says."""
    record, loss = row.record, row.loss
    head_alone = all(record.get(key) == value for key, value in HEAD_ALONE.items())
    parts = ["cosine classifier" if head_alone else LOSS_NAMES.get(loss, loss.replace("_", " "))]
    parts += ["full data"] if row.train_set == "full" else []
    if (profile := record.get("subset.profile", "step")) != "step" and not in_panel:
        parts.append(f"{PROFILE_WORDS.get(profile, profile)}, ratio {_show(record['subset.imbalance_ratio'])}")
    shown = {f"losses.{loss}.{key}": short for key, short in SHOWN.get(loss, {}).items()
             if not (head_alone and f"losses.{loss}.{key}" in HEAD_ALONE)}
    parts += [f"{short} {_show(record[key])}" for key, short in shown.items() if key in record]
    for key, value in row.changes.items():
        last, value = key.rsplit(".", 1)[-1], _plain(value)
        if not (key in shown or last in IMPLIED or key.startswith("subset.") or (head_alone and key in HEAD_ALONE)):
            words = WORDS.get((last, str(value) if isinstance(value, list) else value)) or WORDS.get((last, None)) \
                or last.replace("_", " ") + ("" if value is True else " {}")
            parts.append(words.format(value) if "{:g}" in words else words.format(_show(value)))
    parts += [f"{row.sampler.replace('_', '-')} sampler"] if row.sampler != "shuffle" else []
    parts += ([] if in_panel else [f"{row.epochs} epochs"]) + (["per-batch protocol"] if row.protocol == "per_batch"
                                                                else [])
    return ", ".join(parts) + (f" + post-hoc LA, tau {row.tau:g}" if row.posthoc else "")


def _plain(value):
    """A param comparable across its forms: a list is its JSON text in a record, a tuple in a dataclass."""
    if isinstance(value, str) and value.startswith("["):
        return json.loads(value)
    return list(value) if isinstance(value, tuple) else value


def _show(value) -> str:
    """A value as a name writes it: 0.25, 120, gammas [0.2, ..., 15] as 0.2-15."""
    value = _plain(value)
    if isinstance(value, list):
        return f"{value[0]:g}-{value[-1]:g}" if len(value) > 1 else f"{value[0]:g}"
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
