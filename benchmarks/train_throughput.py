"""Training throughput of the project's Paddle code against a PyTorch eager peer, per core and per machine.

Both sides train the same LeNet with the same loss (cross-entropy), optimizer (Momentum SGD) and batches: the
first --images MNIST training images, held in memory as one tensor, each epoch shuffled and cut into batches
by the project's batch_plan. Every measurement runs in fresh worker processes of this script (`--worker`), so
the two libraries' OpenMP and MKL runtimes never share a process: one epoch of warm-up, then images/s over
--epochs epochs. Each of --rounds rounds measures these setups, the sides alternating so that drift of the
machine's speed falls on both:

    torch, all cores as threads | Paddle, 1 process | torch, 1 thread | Paddle, 1 process per core
    | torch, 1 single-thread process per core | Paddle, 1 process, MKL's own branch

The last row is what reproducibility costs: the stages pin MKL to its AVX2 branch (stages.lib.device), and
that row lets MKL pick its kernels for this CPU (MKL_CBWR=AUTO), as it would without the pin.

Paddle keeps its default of one OpenMP thread (it sets OMP_NUM_THREADS=1 when unset). The processes of a
multi-process setup start their timed epochs together and their rates are summed. The single-process setups
also time evaluation (predict_logits against a no_grad loop) on the first --images test images (all 10,000
by default).

    python benchmarks/train_throughput.py              # needs data/raw (`dvc repro download`) and PyTorch
                                                       # (`pip install -e '.[bench]'`)
    python benchmarks/train_throughput.py --no-peer    # Paddle only
    python benchmarks/train_throughput.py --images 5000 --epochs 1 --rounds 1    # a quick check
"""

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from stages.lib import params as P  # noqa: E402
from stages.lib.data import load_split, to_model_input  # noqa: E402
from stages.lib.paths import RAW_DIR  # noqa: E402
from stages.lib.samplers import batch_plan, shuffle_order  # noqa: E402
from stages.lib.streams import Stream, stream_rng  # noqa: E402

READY = "ready"  # a worker's line on stdout once warmed up; it then waits for a line on stdin


@dataclasses.dataclass(frozen=True)
class Workload:
    """What both sides train and evaluate on."""
    images: np.ndarray  # [N, 1, 28, 28] float32
    labels: np.ndarray  # [N] int64
    test_images: np.ndarray  # [M, 1, 28, 28] float32; M = 0: no evaluation
    train: P.TrainParams
    eval_batch: int
    seed: int


@dataclasses.dataclass(frozen=True)
class Side:
    """One implementation, built and ready to run."""
    train_epoch: Callable[[int], None]  # epoch -> one pass over that epoch's batches
    evaluate: Callable[[], None]  # one pass over the test images
    info: dict  # versions and thread settings, as the worker process sees them


@dataclasses.dataclass(frozen=True)
class Setup:
    """One row of the table: a side, how many of its processes run at once, and torch's threads in each."""
    side: str  # "paddle" | "torch"
    processes: int
    threads: int = 0  # torch.set_num_threads; 0 for Paddle, which keeps its own default
    mkl_branch: str | None = None  # MKL_CBWR the worker starts with; None = the stages' pin (select_device)

    @property
    def shape(self) -> str:
        """E.g. "1 process, 2 threads" or "2 processes at once, 1 thread each"."""
        threads = "Paddle's default threads" if self.side == "paddle" else f"{self.threads} thread"
        threads += "s" * (self.threads > 1) + " each" * (self.processes > 1)
        return f"1 process, {threads}" if self.processes == 1 else f"{self.processes} processes at once, {threads}"

    @property
    def label(self) -> str:
        branch = f", MKL_CBWR={self.mkl_branch} (unpinned)" if self.mkl_branch else ""
        return f"{'project (Paddle)' if self.side == 'paddle' else 'peer (PyTorch eager)'}, {self.shape}{branch}"


def load_workload(raw_dir: Path, images: int, evaluate: bool) -> Workload:
    """The first `images` training images and, with `evaluate`, as many test images (at most all 10,000),
    scaled as params.yaml says."""
    params = P.read_params(REPO_ROOT / P.PARAMS_FILE)
    pixel_range = P.section(params, "data", P.DataParams).pixel_range
    train_images, labels = load_split("train", images, raw_dir)
    test_images = load_split("test", images, raw_dir)[0] if evaluate else train_images[:0]
    return Workload(to_model_input(train_images, pixel_range), labels, to_model_input(test_images, pixel_range),
                    P.section(params, "train", P.TrainParams),
                    P.section(params, "evaluate", P.EvaluateParams).batch_size, P.seed(params))


def epoch_plan(workload: Workload, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The images of `epoch` in order and its batch sizes: the first phase's shuffle, as stages.train draws it."""
    order = shuffle_order(workload.labels, stream_rng(workload.seed, Stream.SHUFFLE, 0, epoch),
                          stream_rng(workload.seed, Stream.UNDERSAMPLE))
    no_minority = np.zeros(len(workload.labels), dtype=bool)
    return batch_plan(order, no_minority, batch_size=workload.train.batch_size, keep_minority_every=1)


def paddle_side(workload: Workload) -> Side:
    """The project's own create_train_state, train_epoch and predict_logits on the CPU."""
    # Imported here, so that the parent and the torch workers never load Paddle (nor its MKL and OpenMP).
    warnings.filterwarnings("ignore", category=UserWarning, module="paddle")  # e.g. "No ccache found"
    import paddle

    from stages.evaluate import predict_logits
    from stages.lib.device import select_device
    from stages.lib.losses import cross_entropy
    from stages.train import create_train_state, train_epoch

    device = select_device("cpu")
    model, optimizer = create_train_state(workload.train, workload.seed)
    x_all, y_all = paddle.to_tensor(workload.images), paddle.to_tensor(workload.labels)

    def run_epoch(epoch: int) -> None:
        train_epoch(model, optimizer, cross_entropy, x_all, y_all, *epoch_plan(workload, epoch))

    # Read after select_device, which pins MKL_CBWR (and sets MKL_DEBUG_CPU_TYPE on AMD CPUs) unless set.
    info = {"version": paddle.__version__, "select_device": device, **mkl_settings()}
    return Side(run_epoch, lambda: predict_logits(model, workload.test_images, workload.eval_batch), info)


def torch_side(workload: Workload, threads: int) -> Side:
    """The same network, loss, optimizer and batches as a plain PyTorch eager loop on `threads` threads."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(workload.seed)
    # The report's layer order, written plainly (stages.lib.model adds the conv biases after pooling instead).
    model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Sigmoid(), nn.MaxPool2d(2), nn.Sigmoid(),
                          nn.Conv2d(6, 16, 5), nn.MaxPool2d(2), nn.Conv2d(16, 120, 4), nn.Flatten(),
                          nn.Linear(120, 64), nn.Sigmoid(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=workload.train.learning_rate,
                                momentum=workload.train.momentum)
    x_all, y_all = torch.from_numpy(workload.images), torch.from_numpy(workload.labels)

    def run_epoch(epoch: int) -> None:
        # stages.train.train_epoch step for step, the loss sum and the correct count included.
        trained, batch_sizes = epoch_plan(workload, epoch)
        model.train()
        order, start = torch.from_numpy(trained), 0
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.int64)
        for size in batch_sizes.tolist():
            batch = order[start:start + size]
            start += size
            x, y = x_all.index_select(0, batch), y_all.index_select(0, batch)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * size
            correct += (logits.argmax(dim=-1) == y).sum()
        loss_sum.item(), correct.item()  # read once per epoch, as train_epoch does

    @torch.no_grad()
    def evaluate() -> None:
        model.eval()
        np.concatenate([model(torch.from_numpy(workload.test_images[start:start + workload.eval_batch])).numpy()
                        for start in range(0, len(workload.test_images), workload.eval_batch)])

    info = {"version": torch.__version__, "threads": torch.get_num_threads(), **mkl_settings()}
    return Side(run_epoch, evaluate, info)


def mkl_settings() -> dict:
    """The thread and MKL variables this worker runs with."""
    return {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_CBWR", "MKL_DEBUG_CPU_TYPE")}


def images_per_second(run: Callable[[int], None], calls: int, images_per_call: int) -> float:
    """Images/s over run(1) ... run(calls)."""
    start = time.perf_counter()
    for call in range(1, calls + 1):
        run(call)
    return calls * images_per_call / (time.perf_counter() - start)


def measure(side: Side, workload: Workload, epochs: int, warmed_up: Callable[[], None] = lambda: None) -> dict:
    """Training images/s over `epochs` epochs after one warm-up epoch (first-call allocations and kernel
    choices), calling warmed_up() in between; then evaluation images/s likewise, when there are test images."""
    side.train_epoch(0)
    warmed_up()
    result = {"train": images_per_second(side.train_epoch, epochs, len(workload.labels)), "eval": None, **side.info}
    if len(workload.test_images):
        side.evaluate()
        result["eval"] = images_per_second(lambda _: side.evaluate(), epochs, len(workload.test_images))
    return result


def run_worker(args: argparse.Namespace) -> None:
    """`--worker`: one measurement in this process; prints READY after the warm-up, waits for a line on
    stdin, then prints the result as one JSON line."""
    workload = load_workload(args.raw_dir, args.images, args.eval)
    side = paddle_side(workload) if args.worker == "paddle" else torch_side(workload, args.threads)

    def wait_for_go() -> None:
        print(READY, flush=True)
        sys.stdin.readline()

    # default=str: whatever select_device returns is reported, even where it is not plain JSON.
    print(json.dumps(measure(side, workload, args.epochs, wait_for_go), default=str), flush=True)


def run_setup(setup: Setup, args: argparse.Namespace) -> list[dict]:
    """The results of `setup.processes` workers started at once. Their timed epochs start together, once all
    have loaded and warmed up, so that they overlap: one process's import must not run beside another's timing."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", setup.side, "--images", str(args.images),
               "--epochs", str(args.epochs), "--raw-dir", str(args.raw_dir.resolve()), "--threads", str(setup.threads)]
    command += ["--eval"] if setup.processes == 1 else []
    env = {key: value for key, value in os.environ.items() if key not in ("MKL_CBWR", "MKL_DEBUG_CPU_TYPE")}
    env.update({"MKL_CBWR": setup.mkl_branch} if setup.mkl_branch else {})
    workers = [subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for _ in range(setup.processes)]
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != READY:
                _fail(worker, setup)
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate()[0] for worker in workers]
        for worker in workers:
            if worker.returncode:
                _fail(worker, setup)
        return [json.loads(output.splitlines()[-1]) for output in outputs]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()


def _fail(worker: subprocess.Popen, setup: Setup) -> NoReturn:
    raise RuntimeError(f"a worker of `{setup.label}` failed (exit status {worker.wait()}); its error is above")


def run_rounds(setups: list[Setup], args: argparse.Namespace) -> dict[Setup, list[list[dict]]]:
    """Every setup's worker results, per round, the setups run in the given order in each round."""
    results = {setup: [] for setup in setups}
    for round_index in range(1, args.rounds + 1):
        for setup in setups:
            results[setup].append(run_setup(setup, args))
            print(f"round {round_index}/{args.rounds}: {setup.label}: "
                  f"{sum(w['train'] for w in results[setup][-1]):,.0f} training images/s", file=sys.stderr)
    return results


def round_setups(cores: int, peer: bool) -> list[Setup]:
    """The order of one round: the sides alternate."""
    unpinned = Setup("paddle", 1, mkl_branch="AUTO")
    if not peer:
        return [Setup("paddle", 1), Setup("paddle", cores), unpinned]
    return [Setup("torch", 1, cores), Setup("paddle", 1), Setup("torch", 1, 1), Setup("paddle", cores),
            Setup("torch", cores, 1), unpinned]


@dataclasses.dataclass(frozen=True)
class Row:
    """A setup's measurements over the rounds."""
    setup: Setup
    train_per_round: list[float]  # images/s, summed over the setup's processes
    eval_mean: float | None  # images/s; None where evaluation was not timed (multi-process setups)

    @property
    def train_mean(self) -> float:
        return sum(self.train_per_round) / len(self.train_per_round)


def summarize(results: dict[Setup, list[list[dict]]]) -> dict[Setup, Row]:
    """Each setup's worker results -> its row."""
    rows = {}
    for setup, rounds in results.items():
        evals = [workers[0]["eval"] for workers in rounds]
        rows[setup] = Row(setup, [sum(w["train"] for w in workers) for workers in rounds],
                          None if None in evals else sum(evals) / len(evals))
    return rows


def render_report(results: dict[Setup, list[list[dict]]], args: argparse.Namespace, cores: int) -> str:
    """The settings, then a markdown table of the measurements and, with the peer, one of the ratios."""
    rows = summarize(results)
    infos = {}  # versions and settings, as each side's first pinned worker saw them
    for setup, rounds in results.items():
        if not setup.mkl_branch:
            infos.setdefault(setup.side, rounds[0][0])
    lines = [*settings_lines(args, cores, infos), "",
             "| setup | train images/s | per round | eval images/s |", "|---|---:|---:|---:|"]
    for row in rows.values():
        eval_cell = "" if row.eval_mean is None else f"{row.eval_mean:,.0f}"
        per_round = " / ".join(f"{rate:,.0f}" for rate in row.train_per_round)
        lines.append(f"| {row.setup.label} | {row.train_mean:,.0f} | {per_round} | {eval_cell} |")
    pinned, unpinned = rows[Setup("paddle", 1)], rows[Setup("paddle", 1, mkl_branch="AUTO")]
    lines += ["", f"MKL's AVX2 pin against MKL's own branch on this CPU, 1 process: {pinned.train_mean:,.0f} / "
              f"{unpinned.train_mean:,.0f} images/s = {pinned.train_mean / unpinned.train_mean:.2f}x"]
    if "torch" in infos:
        lines += ["", *ratio_table(rows, cores)]
    return "\n".join(lines)


def settings_lines(args: argparse.Namespace, cores: int, infos: dict[str, dict]) -> list[str]:
    """What was run, on what, with which versions, threads and MKL path (as each side's worker saw them)."""
    params = P.read_params(REPO_ROOT / P.PARAMS_FILE)
    batch = P.section(params, "train", P.TrainParams).batch_size
    eval_batch = P.section(params, "evaluate", P.EvaluateParams).batch_size
    lines = [f"{args.images:,} training images x {args.epochs} timed epoch(s) after 1 warm-up, batch {batch}; "
             f"evaluation of the first {args.images:,} test images (10,000 at most) in batches of {eval_batch}; "
             f"images/s are means over {args.rounds} round(s), summed over the processes of a setup", "",
             f"- CPU: {_cpu_model()}, {cores} cores available to this process",
             f"- versions: Python {platform.python_version()}, numpy {np.__version__}, "
             + ", ".join(f"{side} {infos[side]['version']}" for side in sorted(infos))]
    for side in sorted(infos):
        info = infos[side]
        extra = (f", select_device(\"cpu\") returned {info['select_device']}" if side == "paddle"
                 else "; torch.set_num_threads as each row says")
        lines.append(f"- {side} worker: OMP_NUM_THREADS={info['OMP_NUM_THREADS'] or 'unset'}, "
                     f"MKL_CBWR={info['MKL_CBWR'] or 'unset'}, "
                     f"MKL_DEBUG_CPU_TYPE={info['MKL_DEBUG_CPU_TYPE'] or 'unset'}{extra}")
    return lines


def ratio_table(rows: dict[Setup, Row], cores: int) -> list[str]:
    """Project / peer per core, in one process, and over the whole machine against the peer's best setup."""
    paddle_one, paddle_all = rows[Setup("paddle", 1)], rows[Setup("paddle", cores)]
    torch_one, torch_threads = rows[Setup("torch", 1, 1)], rows[Setup("torch", 1, cores)]
    best = max((torch_one, torch_threads, rows[Setup("torch", cores, 1)]), key=lambda row: row.train_mean)
    comparisons = [("per core: Paddle, 1 process / torch, 1 thread", paddle_one, torch_one),
                   (f"one process: Paddle, 1 process / torch, {cores} threads", paddle_one, torch_threads),
                   (f"whole machine: Paddle, {cores} processes / the peer's best: torch, {best.setup.shape}",
                    paddle_all, best)]
    return ["| comparison | project images/s | peer images/s | project / peer |", "|---|---:|---:|---:|",
            *(f"| {name} | {ours.train_mean:,.0f} | {theirs.train_mean:,.0f} | "
              f"{ours.train_mean / theirs.train_mean:.2f}x |" for name, ours, theirs in comparisons)]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all setups")
    parser.add_argument("--no-peer", action="store_true", help="Paddle only (for machines without PyTorch)")
    parser.add_argument("--raw-dir", type=Path, default=REPO_ROOT / RAW_DIR, help="the MNIST files")
    parser.add_argument("--worker", choices=("paddle", "torch"), help="internal: run one measurement")
    parser.add_argument("--threads", type=int, default=0, help="internal: torch threads of a --worker torch")
    parser.add_argument("--eval", action="store_true", help="internal: a --worker also times evaluation")
    args = parser.parse_args()
    for key in ("images", "epochs", "rounds"):
        if getattr(args, key) < 1:
            parser.error(f"--{key}: {getattr(args, key)} is not allowed; expected an integer >= 1")
    if args.worker:
        run_worker(args)
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores < 2:
        parser.error(f"this process may use {cores} CPU core; the per-core and whole-machine rows need 2 or more")
    results = run_rounds(round_setups(cores, peer=not args.no_peer), args)
    print(render_report(results, args, cores))


if __name__ == "__main__":
    main()
