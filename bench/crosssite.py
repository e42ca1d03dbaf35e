"""Cross-site training benchmark: does the model that travels match the model trained on pooled data?

BreastMNIST (official split, from ``pollen_agent.ml.data.load_medmnist``) is split across
three simulated sites, once evenly and once with skewed label mixes. Each setting trains
the same model with the same recipe the platform uses (``pollen_agent.jobs.federated.train_local``,
which wraps ``ml.recipe.train``) and averages with the hub's own aggregation code
(``pollen.federation.aggregation``), in-process, with no hub.

Settings, each scored on the official test set (AUC and accuracy):

- ``local-only site-N``: each site trains alone on its own images;
- ``relay``: the weights visit site 1, 2, 3 in turn, for R rounds;
- ``fedavg``: every site trains E local epochs from the global weights each round,
  averaged by sample count;
- ``pooled``: one model on all sites' images together (the baseline; needs the data
  to leave the sites, which Pollen never does).

Call ``run(quick: bool) -> list[dict]``. Each row is
``{"benchmark": "cross-site", "setting": str, "metric": "test_auc" | "test_accuracy",
"value": float, "baseline": float (pooled), "ratio": value / baseline}``. With
``quick=True`` it trains a tiny network for a couple of epochs (seconds; a smoke test,
the figures mean nothing). When the MedMNIST data folder is absent it returns a single
row whose ``setting`` is ``"skipped"`` and whose ``note`` gives the reason.

Run alone: ``python -m bench.crosssite [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for folder in ("workers", "platform"):
    if str(REPO / folder) not in sys.path:
        sys.path.insert(0, str(REPO / folder))

LABELS = ["malignant", "normal or benign"]
SITES = 3
# Share of each label's images held by sites 1..3 in the skewed split.
SKEW = {0: (0.6, 0.3, 0.1), 1: (0.15, 0.35, 0.5)}


@dataclass(frozen=True)
class Plan:
    architecture: str
    source: str
    input_size: int
    epochs: int  # pooled and local-only
    rounds: int
    local_epochs: int
    lr: float
    batch_size: int
    limit: int | None  # training images used (quick mode)


FULL = Plan("efficientnet_lite0", "imagenet", 32, 4, 2, 2, 1e-3, 32, None)
QUICK = Plan("small_cnn", "random", 28, 2, 2, 1, 3e-3, 32, 120)


def split_sites(labels: np.ndarray, *, skewed: bool, seed: int) -> list[np.ndarray]:
    """Indices of each site's images: stratified evenly, or by the SKEW label shares."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(SITES)]
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        shares = SKEW[int(label)] if skewed else (1 / SITES,) * SITES
        cuts = np.round(np.cumsum(shares)[:-1] * len(idx)).astype(int)
        for site, chunk in enumerate(np.split(idx, cuts)):
            parts[site].extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _rgb(images: np.ndarray) -> list[np.ndarray]:
    return [np.repeat(img[:, :, None], 3, axis=2) for img in images]


def _model(plan: Plan, seed: int) -> Any:
    import torch

    from pollen_agent.ml.zoo import build_model

    torch.manual_seed(seed)
    return build_model(plan.architecture, len(LABELS), source=plan.source)


def _state_np(state: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in state.items()}


def _load_np(model: Any, tensors: dict[str, np.ndarray]) -> Any:
    import torch

    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
    return model


def _train(plan: Plan, model: Any, train: tuple, val: tuple, *, epochs: int, lr: float, seed: int):
    from pollen_agent.jobs.federated import train_local

    return train_local(
        model,
        train,
        val,
        architecture=plan.architecture,
        input_size=plan.input_size,
        epochs=epochs,
        lr=lr,
        batch_size=plan.batch_size,
        seed=seed,
        label_names=LABELS,
    )


def _score(plan: Plan, model: Any, test: tuple) -> dict[str, float]:
    """Test AUC and accuracy (threshold 0.5) on the official test split."""
    from pollen_agent.ml.data import ArrayImageDataset
    from pollen_agent.ml.metrics import evaluate
    from pollen_agent.ml.recipe import predict_probs
    from pollen_agent.ml.zoo import get_spec

    spec = get_spec(plan.architecture)
    dataset = ArrayImageDataset(
        test[0], test[1], input_size=plan.input_size, mean=spec.mean, std=spec.std, augment=False
    )
    report = evaluate(predict_probs(model, dataset), np.asarray(test[1]), LABELS)
    return {"test_auc": float(report["auc"]), "test_accuracy": float(report["accuracy"])}


def _federated(plan: Plan, sites: list[tuple[tuple, tuple]], *, strategy: str, seed: int):
    from pollen.federation.aggregation import fedavg, relay
    from pollen_agent.jobs.federated import round_learning_rate

    model = _model(plan, seed)
    global_np = _state_np({k: v.detach().clone() for k, v in model.state_dict().items()})
    for number in range(1, plan.rounds + 1):
        lr = round_learning_rate(plan.lr, number, plan.rounds)
        updates = []
        incoming = global_np
        for train, val in sites:
            result = _train(
                plan,
                _load_np(model, incoming),
                train,
                val,
                epochs=plan.local_epochs,
                lr=lr,
                seed=seed + number,
            )
            updates.append((_state_np(result.state), result.sample_count))
            if strategy == "relay":
                incoming = updates[-1][0]
        global_np = fedavg(updates) if strategy == "fedavg" else relay(updates)
    return _load_np(model, global_np)


def _say(text: str) -> None:
    print(f"[cross-site] {text}", file=sys.stderr, flush=True)


def run(quick: bool) -> list[dict[str, Any]]:
    """Train every setting and return the table rows (see the module docstring)."""
    import torch

    from pollen_agent.ml.data import load_medmnist

    try:
        data = {s: load_medmnist("breastmnist", s) for s in ("train", "val", "test")}
    except FileNotFoundError as exc:
        return [
            {
                "benchmark": "cross-site",
                "setting": "skipped",
                "metric": "",
                "value": None,
                "baseline": None,
                "ratio": None,
                "note": f"BreastMNIST is not available: {exc}",
            }
        ]
    plan = QUICK if quick else FULL
    torch.set_num_threads(max(1, torch.get_num_threads()))
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data["train"], data["val"], data["test"]
    if plan.limit:
        x_tr, y_tr = x_tr[: plan.limit], y_tr[: plan.limit]
    test = (_rgb(x_te), y_te.tolist())
    seed = 0
    rows: list[dict[str, Any]] = []
    results: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    pooled = _train(
        plan,
        _model(plan, seed),
        (_rgb(x_tr), y_tr.tolist()),
        (_rgb(x_va), y_va.tolist()),
        epochs=plan.epochs,
        lr=plan.lr,
        seed=seed,
    )
    _say(f"pooled done ({time.perf_counter() - started:.0f}s)")
    results["pooled"] = _score(plan, _load_np(_model(plan, seed), _state_np(pooled.state)), test)
    for skewed in (False, True):
        mix = "skewed" if skewed else "even"
        train_parts = split_sites(y_tr, skewed=skewed, seed=seed)
        val_parts = split_sites(y_va, skewed=skewed, seed=seed + 1)
        sites = [
            (
                (_rgb(x_tr[t]), y_tr[t].tolist()),
                (_rgb(x_va[v]), y_va[v].tolist()),
            )
            for t, v in zip(train_parts, val_parts, strict=True)
        ]
        for i, (train, val) in enumerate(sites, start=1):
            local = _train(
                plan, _model(plan, seed), train, val, epochs=plan.epochs, lr=plan.lr, seed=seed
            )
            model = _load_np(_model(plan, seed), _state_np(local.state))
            results[f"{mix}: local-only site-{i} (n={len(train[1])})"] = _score(plan, model, test)
            _say(f"{mix} local-only site-{i} done ({time.perf_counter() - started:.0f}s)")
        for strategy in ("relay", "fedavg"):
            model = _federated(plan, sites, strategy=strategy, seed=seed)
            results[f"{mix}: {strategy}"] = _score(plan, model, test)
            _say(f"{mix} {strategy} done ({time.perf_counter() - started:.0f}s)")
    seconds = time.perf_counter() - started
    for setting, scores in results.items():
        for metric, value in scores.items():
            baseline = results["pooled"][metric]
            rows.append(
                {
                    "benchmark": "cross-site",
                    "setting": setting,
                    "metric": metric,
                    "value": round(value, 4),
                    "baseline": round(baseline, 4),
                    "ratio": round(value / baseline, 4) if baseline else None,
                }
            )
    rows.append(
        {
            "benchmark": "cross-site",
            "setting": "plan",
            "metric": "seconds",
            "value": round(seconds, 1),
            "baseline": None,
            "ratio": None,
            "note": (
                f"{plan.architecture} ({plan.source}) at {plan.input_size}px; pooled and local-only "
                f"{plan.epochs} epochs; relay and fedavg {plan.rounds} rounds x {plan.local_epochs} "
                f"local epochs; {SITES} sites"
            ),
        }
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-size smoke run")
    args = parser.parse_args(argv)
    for row in run(args.quick):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
