"""Multi-process NT-Xent (simclr_core.train.distributed) against single-process nt_xent on the same global batch.

Two real processes on CPU with gloo over loopback (127.0.0.1) each hold N/2 pairs; their loss, their
embedding gradients and the DDP-averaged parameter gradients of a tiny model must equal one process
holding all N pairs (to 1e-5). The mis-indexed variant (local-index diagonal and positives) and the
no-gather variant must NOT match, which shows the comparison can fail.

End to end (slow): ``torchrun --nproc-per-node 2 -m simclr_core pretrain`` on the CIFAR-format fixture is
interrupted after its first checkpoint, resumed, and must end with the weights of an uninterrupted run;
notebooks/10_distributed.ipynb runs in smoke mode and its numbers are checked here independently.
"""

from __future__ import annotations

import json
import math
import os
from unittest import mock
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from simclr_core.train.distributed import (
    DistInfo,
    TorchrunEnv,
    gather_with_grad,
    init_distributed,
    nt_xent_distributed,
    nt_xent_rank,
    torchrun_env,
)
from simclr_core.nn.loss import nt_xent, positive_pairs
from simclr_core.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
N, D_IN, TAU, WORLD = 8, 6, 0.5, 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def global_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D_IN, generator=g, dtype=torch.float64)  # (N, D_in) "images"
    x1 = x + 0.3 * torch.randn(N, D_IN, generator=g, dtype=torch.float64)  # (N, D_in) view 1
    x2 = x + 0.3 * torch.randn(N, D_IN, generator=g, dtype=torch.float64)  # (N, D_in) view 2
    return x1, x2


def tiny_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(D_IN, 16), nn.ReLU(), nn.Linear(16, 4)).double()


def mis_indexed_loss(z1_all, z2_all, rank, world_size, tau):
    """The classic bug: single-process code pasted onto gathered candidates, diagonal + positives at LOCAL indices."""
    B = z1_all.shape[0] // world_size
    z_local = F.normalize(torch.cat([z1_all[rank * B : (rank + 1) * B], z2_all[rank * B : (rank + 1) * B]]), dim=1)
    z = F.normalize(torch.cat([z1_all, z2_all]), dim=1)  # (2N, D)
    logits = z_local @ z.T / tau  # (2B, 2N)
    logits[torch.arange(2 * B), torch.arange(2 * B)] = float("-inf")  # wrong: local row i is not global row i
    return F.cross_entropy(logits, positive_pairs(B))  # wrong: local partner i +- B


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    from torch.nn.parallel import DistributedDataParallel as DDP

    from simclr_core.train import distributed as sd

    info = sd.init_distributed("cpu")
    try:
        x1, x2 = global_batch()
        B = N // world_size
        x = torch.cat([x1[rank * B : (rank + 1) * B], x2[rank * B : (rank + 1) * B]])  # (2B, D_in) both views
        model = DDP(tiny_model())
        z = model(x)  # (2B, 4) one forward for both views (DDP expects one forward per backward)
        z.retain_grad()
        z1, z2 = z[:B], z[B:]
        loss = sd.nt_xent_distributed(z1, z2, TAU)
        loss.backward()
        with torch.no_grad():
            z1_all, z2_all = sd.gather_with_grad(z1), sd.gather_with_grad(z2)
            buggy = mis_indexed_loss(z1_all, z2_all, rank, world_size, TAU)
            local_only = nt_xent(z1, z2, TAU)
        try:  # unequal batches across processes must be a clear error on every process, not a hang
            sd.gather_with_grad(torch.zeros(2 + rank, 3))
            mismatch = ""
        except ValueError as err:
            mismatch = str(err)
        torch.save(
            {
                "mismatch": mismatch,
                "info": (info.rank, info.world_size, info.local_rank, str(info.device), info.is_main),
                "loss": loss.detach(),
                "global_loss": sd.reduce_mean(loss),
                "z_grad": z.grad.clone(),
                "param_grads": [p.grad.clone() for p in model.parameters()],
                "buggy": buggy,
                "local_only": local_only,
                "is_main": sd.is_main_process(),
                "any": (sd.any_process(rank == 1), sd.any_process(False), sd.any_process(True)),
            },
            f"{out}/rank{rank}.pt",
        )
        del model, z, z1, z2, loss  # the DDP wrapper goes before its process group does (sd.cleanup collects it)
        sd.barrier()
        check = sd.self_check(N=6, D=5, device="cpu")  # what `torchrun -m simclr_core.train.distributed` runs; it cleans up itself
        torch.save(check, f"{out}/check{rank}.pt")
    finally:
        sd.cleanup()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(WORLD, free_port(), str(out)), nprocs=WORLD, join=True)
    results = [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]
    for r, res in enumerate(results):
        res["self_check"] = torch.load(out / f"check{r}.pt")
    return results


@pytest.fixture(scope="module")
def single():
    x1, x2 = global_batch()
    model = tiny_model()
    z1, z2 = model(x1), model(x2)  # (N, 4) each
    z1.retain_grad()
    z2.retain_grad()
    loss = nt_xent(z1, z2, TAU)
    loss.backward()
    return {"loss": loss.detach(), "z1_grad": z1.grad, "z2_grad": z2.grad,
            "param_grads": [p.grad for p in model.parameters()]}


def test_processes_know_who_they_are(two_ranks):
    for r, res in enumerate(two_ranks):
        assert res["info"] == (r, WORLD, r, "cpu", r == 0)
        assert res["is_main"] == (r == 0)
        assert res["any"] == (True, False, True)  # any_process: one process's True reaches every process
        assert "same (B, D)" in res["mismatch"] and "[(2, 3), (3, 3)]" in res["mismatch"]


def test_loss_equals_single_process(two_ranks, single):
    per_rank = torch.stack([res["loss"] for res in two_ranks])
    torch.testing.assert_close(per_rank.mean(), single["loss"], rtol=0, atol=1e-5)
    for res in two_ranks:  # reduce_mean is what rank 0 logs
        torch.testing.assert_close(res["global_loss"], single["loss"], rtol=0, atol=1e-5)


def test_embedding_gradients_equal_single_process(two_ranks, single):
    """Each process's dL/dz is WORLD x the single-process one (DDP's 1/WORLD averaging undoes that)."""
    B = N // WORLD
    for r, res in enumerate(two_ranks):
        g = res["z_grad"] / WORLD  # (2B, 4)
        torch.testing.assert_close(g[:B], single["z1_grad"][r * B : (r + 1) * B], rtol=0, atol=1e-5)
        torch.testing.assert_close(g[B:], single["z2_grad"][r * B : (r + 1) * B], rtol=0, atol=1e-5)


def test_ddp_parameter_gradients_equal_single_process(two_ranks, single):
    for res in two_ranks:
        for g, ref in zip(res["param_grads"], single["param_grads"]):
            torch.testing.assert_close(g, ref, rtol=0, atol=1e-5)
    assert max(float(g.abs().max()) for g in single["param_grads"]) > 1e-3  # the comparison is not 0 == 0


def test_mis_indexed_and_ungathered_losses_do_not_match(two_ranks, single):
    """The same comparison catches the two classic mistakes: it can fail."""
    buggy = torch.stack([res["buggy"] for res in two_ranks]).mean()
    local_only = torch.stack([res["local_only"] for res in two_ranks]).mean()
    assert abs(float(buggy - single["loss"])) > 1e-2
    assert abs(float(local_only - single["loss"])) > 1e-2


# ------------------------------------------------------------------ in-process maths and input checks


@pytest.mark.parametrize("K", [1, 2, 3, 4, 12])
def test_mean_over_simulated_ranks_is_nt_xent(K):
    g = torch.Generator().manual_seed(K)
    Z1, Z2 = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randn(12, 5, generator=g, dtype=torch.float64)
    per_rank = torch.stack([nt_xent_rank(Z1, Z2, r, K, TAU) for r in range(K)])  # (K,)
    torch.testing.assert_close(per_rank.mean(), nt_xent(Z1, Z2, TAU))
    # reduction="none" gives the per-anchor losses of nt_xent, rank by rank
    full = nt_xent(Z1, Z2, TAU, reduction="none")  # (2N,)
    B = 12 // K
    r = K - 1
    mine = nt_xent_rank(Z1, Z2, r, K, TAU, reduction="none")  # (2B,)
    torch.testing.assert_close(mine, torch.cat([full[r * B : (r + 1) * B], full[12 + r * B : 12 + (r + 1) * B]]))


def test_single_process_is_plain_nt_xent():
    z1, z2 = torch.randn(5, 3), torch.randn(5, 3)
    assert gather_with_grad(z1) is z1
    torch.testing.assert_close(nt_xent_distributed(z1, z2, 0.2), nt_xent(z1, z2, 0.2))


def test_init_without_torchrun_is_one_process(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert init_distributed("cpu") == DistInfo(0, 1, 0, torch.device("cpu"))
    assert init_distributed("cpu").is_main


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", None, 3])
def test_bad_device_names_the_value(bad):
    with pytest.raises(ValueError, match="device"):
        init_distributed(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_value_error():
    with pytest.raises(ValueError, match="'cuda'"):
        init_distributed("cuda")


def test_bad_torchrun_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE.*'two'"):
        init_distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match=r"RANK must be an integer in 0\.\.1 \(WORLD_SIZE=2\), got '5'"):
        init_distributed("cpu")


@pytest.mark.parametrize("env, needle", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE must be an integer >= 1 (the number of processes), got 'abc'"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE must be an integer >= 1"),
    ({"WORLD_SIZE": "2", "RANK": "abc"}, "RANK must be an integer in 0..1 (WORLD_SIZE=2), got 'abc'"),
    ({"RANK": "1"}, "RANK must be an integer in 0..0 (WORLD_SIZE=1), got '1'"),
    ({"WORLD_SIZE": "2", "RANK": "-1"}, "got '-1'"),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "x"}, "LOCAL_RANK must be an integer in 0..1"),
    ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "2"}, "LOCAL_RANK must be an integer in 0..1 (WORLD_SIZE=2), got '2'"),
])
def test_torchrun_env_names_the_bad_variable(env, needle):
    with pytest.raises(ValueError) as err:
        torchrun_env(env)
    assert needle in str(err.value)


def test_torchrun_env_reads_what_torchrun_sets():
    assert torchrun_env({}) == TorchrunEnv(0, 1, 0)
    assert torchrun_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": " 1 "}) == TorchrunEnv(3, 4, 1)


def test_nt_xent_rank_rejects_bad_input():
    Z = torch.randn(6, 3)
    with pytest.raises(ValueError, match="rank"):
        nt_xent_rank(Z, Z, 3, 3)
    with pytest.raises(ValueError, match="world_size"):
        nt_xent_rank(Z, Z, 0, 0)
    with pytest.raises(ValueError, match="N=6.*world_size=4"):
        nt_xent_rank(Z, Z, 0, 4)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_rank(Z, Z, 0, 2, temperature=-1)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_rank(Z, Z[:4], 0, 2)
    with pytest.raises(ValueError, match="reduction"):
        nt_xent_rank(Z, Z, 0, 2, reduction="avg")


def torchrun_cmd(nproc: int) -> list[str]:
    """``torchrun`` of this venv, on loopback only (a free port, no --standalone hostname lookup)."""
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
            "--master-addr=127.0.0.1", f"--master-port={free_port()}"]


def test_self_check_agrees_on_every_process(two_ranks):
    """``self_check`` (run by ``torchrun -m simclr_core.train.distributed``) finds float64 round-off only."""
    for res in two_ranks:
        assert 0 <= res["self_check"] < 1e-12


# ------------------------------------------------------------------ end to end: torchrun + simclr pretrain


def _pretrain_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return torchrun_cmd(2) + ["-m", "simclr_core", "pretrain", "--dataset", "cifar10", "--data-root", str(data),
                              "--out", str(out), "--epochs", "3", "--batch-size", "64", "--widths", "8,16",
                              "--device", "cpu", "--num-threads", "1", "--no-progress", *extra]


def _env() -> dict:
    return dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")


def _final_weights(run: Path) -> dict:
    return load_checkpoint(run / "checkpoint.pt")["model"]


@pytest.mark.slow
def test_torchrun_pretrain_checkpoints_and_resumes_exactly(tmp_path):
    """2 gloo processes: a run stopped (SIGTERM to torchrun) after its first checkpoint resumes with --resume
    and ends with exactly the weights of the same run left uninterrupted."""
    from simclr_core.data.synthetic import write_fake_cifar10

    data = write_fake_cifar10(tmp_path / "data", n_train=640, n_test=100, seed=0)

    whole = tmp_path / "whole"
    done = subprocess.run(_pretrain_cmd(data, whole), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]  # rank 0 alone logs: one line per epoch, not one per process
    assert all(r["steps"] == 640 // 64 for r in rows)  # steps of the GLOBAL batch of 64 (32 per process)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(_pretrain_cmd(data, cut), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    while not (cut / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() - t0 < 120:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # torchrun stops its workers, as on a pre-empted cluster node
    log = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0, f"the run finished before it could be interrupted; make epochs longer\n{log[-2000:]}"
    state = load_checkpoint(cut / "checkpoint.pt")
    assert state["epoch"] == 0, "interrupted after the first checkpoint, which is epoch 0's"
    first_row = state["history"][0]  # epoch 0 as the interrupted run measured it (its timings are unique)

    resumed = subprocess.run(_pretrain_cmd(data, cut, "--resume"), cwd=REPO, env=_env(), capture_output=True,
                             text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows_cut = [json.loads(line) for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows_cut] == [0, 1, 2]
    assert rows_cut[0] == first_row, "the resumed run must continue after epoch 0, not train it again"
    for a, b in zip(rows, rows_cut):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    w_whole, w_cut = _final_weights(whole), _final_weights(cut)
    assert w_whole.keys() == w_cut.keys()
    for k in w_whole:
        torch.testing.assert_close(w_cut[k], w_whole[k], rtol=0, atol=1e-6, msg=f"{k} differs after resume")


# ------------------------------------------------------------------ the notebook


@pytest.mark.slow
def test_notebook_10_runs_in_smoke_mode():
    """notebooks/10_distributed.ipynb executes top to bottom in smoke mode, and what it computes and shows
    agrees with values computed here independently."""
    import nbformat
    from nbclient import NotebookClient

    path = REPO / "notebooks" / "10_distributed.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    dump = "dict(L_single=L_single.item(), Ks=Ks, res=res, runs={k: v[0] for k, v in runs.items()}, N=N, B=B, K=K)"
    nb.cells.append(nbformat.v4.new_code_cell(f"import json as _json\nprint('__DUMP__' + _json.dumps({dump}))"))
    with mock.patch.dict(os.environ, {"SIMCLR_SMOKE": "1"}):  # restored on exit
        os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend must render the figures
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "smoke mode: True" in text
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 2
    v = json.loads(text.split("__DUMP__", 1)[1])

    # section 1 against an independent computation on the same seeded batch
    g = torch.Generator().manual_seed(0)
    Z1, Z2 = (torch.randn(64, 32, generator=g, dtype=torch.float64) for _ in range(2))
    assert v["L_single"] == pytest.approx(nt_xent(Z1, Z2, 0.5).item(), abs=1e-12)
    for K, (L_gathered, err_gathered), (L_local, err_local) in zip(v["Ks"], v["res"]["gathered"], v["res"]["no gather"]):
        B = 64 // K
        local = torch.stack([nt_xent(Z1[r * B:(r + 1) * B], Z2[r * B:(r + 1) * B], 0.5) for r in range(K)]).mean()
        assert L_gathered == pytest.approx(v["L_single"], abs=1e-12) and err_gathered < 1e-12
        assert L_local == pytest.approx(local.item(), abs=1e-12)
        assert (err_local > 0.05) if K > 1 else (err_local < 1e-12)
    # section 4: the mis-indexed run's log stays near chance log(2N-1), the correct one leaves it
    chance = math.log(2 * v["N"] - 1)
    mis, ok = v["runs"]["mis-indexed"], v["runs"]["gathered"]
    assert abs(sum(mis[-5:]) / 5 - chance) < 0.4
    assert sum(ok[-5:]) / 5 < chance - 0.6
