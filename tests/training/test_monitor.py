"""satcli.Monitor in a real training loop: passive (mode, gradients, outputs, RNG untouched), exact numbers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn
from training_runs import TrainedRun, trained_runs

import satcli
from satcli.errors import SatcliError
from satcli.store.reader import read_store


@pytest.fixture(scope="session")
def trained() -> dict[str, TrainedRun]:
    """The narrow and wide training runs (trained once per session, see training_runs.py)."""
    return trained_runs()


class Net(nn.Module):
    """Conv -> BatchNorm -> ReLU -> Dropout -> pool -> two Linear layers: mode-dependent on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.3)
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.bn(self.conv(x)))).mean((2, 3))
        return self.fc2(torch.relu(self.fc1(h)))


def _data(steps: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)) for _ in range(steps)]


def _train(monitor: bool, frozen: set[str] = frozenset({"fc2.bias"})) -> dict[str, object]:
    """A few SGD steps (train mode, one eval step under no_grad); everything a user could observe."""
    torch.manual_seed(0)
    net = Net()
    for name, p in net.named_parameters():
        p.requires_grad_(name not in frozen)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    mon = satcli.Monitor(net) if monitor else None
    if mon is not None:
        mon.attach()
    outputs, grads, modes = [], [], []
    for x, y in _data():
        out = net(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        outputs.append(out.detach().clone())
        grads.append([None if p.grad is None else p.grad.clone() for p in net.parameters()])
        modes.append((net.training, out.requires_grad, out.grad_fn is not None))
        opt.step()
    net.eval()
    with torch.no_grad():
        outputs.append(net(_data(1)[0][0]))
    if mon is not None:
        mon.detach()
    return {
        "net": net,
        "outputs": outputs,
        "grads": grads,
        "modes": modes,
        "requires_grad": [p.requires_grad for p in net.parameters()],
        "rng": torch.rand(3),
        "monitor": mon,
    }


def _all_hooks(net: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())


def test_monitor_changes_nothing_the_user_sees() -> None:
    plain, watched = _train(monitor=False), _train(monitor=True)
    for a, b in zip(plain["outputs"], watched["outputs"], strict=True):  # type: ignore[call-overload]
        assert torch.equal(a, b)
    for ga, gb in zip(plain["grads"], watched["grads"], strict=True):  # type: ignore[call-overload]
        assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(ga, gb, strict=True))
    assert plain["modes"] == watched["modes"] == [(True, True, True)] * 6
    assert plain["requires_grad"] == watched["requires_grad"]
    assert torch.equal(plain["rng"], watched["rng"])  # type: ignore[arg-type]
    for a, b in zip(plain["net"].state_dict().values(), watched["net"].state_dict().values(), strict=True):  # type: ignore[attr-defined]
        assert torch.equal(a, b)  # BatchNorm running statistics included
    assert _all_hooks(watched["net"]) == 0  # type: ignore[arg-type]
    assert watched["monitor"].num_inputs == 6 * 32 + 32  # type: ignore[attr-defined]


def test_hooks_removed_also_after_an_error() -> None:
    net = Net()
    with pytest.raises(RuntimeError), satcli.Monitor(net):
        assert _all_hooks(net) > 0
        net(torch.randn(2, 3, 8, 8))  # wrong channel count
    assert _all_hooks(net) == 0


def _reference(rows: np.ndarray, delta: float = 0.99) -> tuple[np.ndarray, int]:
    cov = np.cov(rows, rowvar=False)
    eigs = np.clip(scipy.linalg.eigvalsh(cov)[::-1], 0, None)
    return cov, int(np.searchsorted(np.cumsum(eigs) / eigs.sum(), delta - 1e-12) + 1)


def test_monitor_numbers_against_numpy() -> None:
    torch.manual_seed(3)
    net = Net().train()
    seen: dict[str, list[np.ndarray]] = {"conv": [], "fc1": [], "fc2": []}

    def keep(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, out: torch.Tensor) -> None:
            # Global average pooling in the activation dtype, as METHOD.md sec. 1 allows; the covariance is numpy's.
            t = out.detach()
            seen[name].append((t.mean((2, 3)) if t.ndim == 4 else t).double().numpy())

        return hook

    own = [getattr(net, name).register_forward_hook(keep(name)) for name in seen]
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    with satcli.Monitor(net) as monitor:
        for x, y in _data():
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for handle in own:
        handle.remove()
    state = {layer.meta.name: layer.stats for layer in monitor.state().layers}
    result = monitor.compute()
    for layer in result.layers:
        cov, k = _reference(np.concatenate(seen[layer.name]))
        stats = state[layer.name]
        mine = stats.m2 / (stats.samples - 1)
        assert np.linalg.norm(mine - cov) / np.linalg.norm(cov) < 1e-12
        assert layer.k == k
    assert [layer.name for layer in result.layers] == ["conv", "fc1", "fc2"]


def test_state_dict_merge_and_reset(tmp_path: Path) -> None:
    torch.manual_seed(4)
    net = Net().eval()
    batches = [x for x, _ in _data()]
    whole, first, second = satcli.Monitor(net), satcli.Monitor(net), satcli.Monitor(net)
    with whole:
        for x in batches:
            net(x)
    with first:
        for x in batches[:2]:
            net(x)
    with second:
        for x in batches[2:]:
            net(x)
    buffer = tmp_path / "monitor.pt"
    torch.save(second.state_dict(), buffer)
    restored = satcli.Monitor(net)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    first.merge(restored)
    a, b = whole.state(), first.state()
    assert a.num_inputs == b.num_inputs == 6 * 32
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.meta == lb.meta
        assert np.linalg.norm(la.stats.m2 - lb.stats.m2) / np.linalg.norm(la.stats.m2) < 1e-12
    assert [x.k for x in whole.compute().layers] == [x.k for x in first.compute().layers]
    first.reset()
    with pytest.raises(SatcliError, match="no forward pass"):
        first.compute()


def test_every_records_every_nth_forward_pass() -> None:
    net = Net().eval()
    monitor = satcli.Monitor(net, every=3)
    with monitor:
        for x, _ in _data(6):
            net(x)
    assert monitor.num_inputs == 2 * 32


class Tokens(nn.Module):
    """input_ids -> embedding -> Linear per token, called with keyword inputs like a Hugging Face model."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 5)
        self.proj = nn.Linear(5, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embed(input_ids))


def test_monitor_pools_real_tokens_only() -> None:
    torch.manual_seed(5)
    net = Tokens()
    ids = torch.randint(1, 20, (12, 7))
    mask = torch.ones(12, 7, dtype=torch.long)
    mask[::2, 4:] = 0  # right padding on every other row
    with satcli.Monitor(net) as monitor, torch.no_grad():
        net(input_ids=ids, attention_mask=mask)
    with torch.no_grad():
        out = net(ids, mask)
    # The mean over each row's real tokens, in the activation dtype (METHOD.md sec. 8); covariance by numpy.
    pooled = torch.stack([out[i][mask[i].bool()].mean(dim=0) for i in range(12)]).double().numpy()
    stats = monitor.state().layers[0].stats
    cov, _ = _reference(pooled)
    assert stats.samples == 12
    # float32 pooling sums in another order than the per-row reference: equal to float32 rounding.
    assert np.linalg.norm(stats.m2 / (stats.samples - 1) - cov) / np.linalg.norm(cov) < 1e-6


def test_checkpoints_form_a_trajectory_the_commands_read(trained: dict, run_cli: Callable, tmp_path: Path) -> None:
    run = trained["wide"]
    report = run_cli("report", run.store, "-f", "jsonl")
    assert report.code == 0, report.stderr
    documents = [json.loads(line) for line in report.stdout.splitlines()]
    assert [d["options"]["step"] for d in documents] == list(range(len(run.losses)))
    assert [d["options"]["metadata"]["loss"] for d in documents] == pytest.approx(run.losses)
    assert all(d["options"]["num_inputs"] == documents[0]["options"]["num_inputs"] == 640 for d in documents)
    assert run_cli("compare", run.store).code == 0
    pytest.importorskip("matplotlib")
    assert run_cli("plot", run.store, "-o", tmp_path / "p.png").code == 0
    check = run_cli("check", run.store, "--max-average", "0.99")
    assert check.code in (0, 1), check.stderr


def test_bad_monitor_arguments() -> None:
    with pytest.raises(SatcliError, match="no layer matches"):
        satcli.Monitor(Net(), layers=["nothing*"])
    with pytest.raises(SatcliError, match="every"):
        satcli.Monitor(Net(), every=0)


def test_sync_merges_ranks_exactly(tmp_path: Path) -> None:
    import sync_worker
    import torch.multiprocessing as mp

    store = tmp_path / "ranks.h5"
    mp.spawn(sync_worker.run, args=(2, str(tmp_path / "init"), str(store)), nprocs=2, join=True)
    net = sync_worker.model()
    with satcli.Monitor(net) as alone, torch.no_grad():
        for x in sync_worker.batches():
            net(x)
    _, (stored,) = read_store(store)
    assert stored.num_inputs == 100
    for layer, expected in zip(stored.layers, alone.state().layers, strict=True):
        assert layer.meta.name == expected.meta.name
        assert np.linalg.norm(layer.stats.m2 - expected.stats.m2) / np.linalg.norm(expected.stats.m2) < 1e-12
