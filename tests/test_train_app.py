"""`podm train` as a user runs it: a short run leaves TensorBoard events, checkpoints and exported weights;
``ckpt_path=`` resumes at the saved step; ``-m`` sweeps write one run dir per job; bad input is one line."""

from __future__ import annotations

import glob

import pytest
import torch

from conftest import error_lines, eval_rows, run_podm
from podm_cli.models.rpodm_weights import read_weights_file
from podm_cli.training.cache import write_images

# small and fast: 32 px crops, 4 steps, 2 validation images (about 15 s per run on one core)
TINY = ["+experiment=quick", "train_data.crop=32", "train_data.val_crop=32", "train_data.samples_per_epoch=8",
        "trainer.max_steps=4", "trainer.val_check_interval=2", "callbacks.rich_progress=false"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    items = lambda n, tag: [(f"{tag}{i}", torch.rand(1, 60, 70, generator=g)) for i in range(n)]
    path = tmp_path_factory.mktemp("cache") / "images.h5"
    return write_images(path, {"train": items(6, "t"), "val": items(2, "v")}, excluded={})


def _train(tmp_path, data_dir, cache, run_dir, *extra):
    return run_podm(["train", *TINY, f"train_data.cache={cache}", f"hydra.run.dir={run_dir}", *extra], tmp_path,
                    env={"PODM_DATA": str(data_dir)})


def test_quick_run_writes_events_checkpoints_and_weights_then_resumes(tmp_path, data_dir, cache):
    run = tmp_path / "run"
    proc = _train(tmp_path, data_dir, cache, run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert glob.glob(str(run / "tensorboard" / "**" / "events.out.tfevents*"), recursive=True)
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 4
    blob = read_weights_file(run / "rpodm.pt")
    assert blob["provenance"]["steps"] == 4 and blob["config"]["stages"] == 2
    assert blob["trained_for"] == {"mode": "circular", "sigma": 0.01, "sigma_spacing": "linear", "quantize": False,
                                   "kernel_size": 31}
    assert "best val/psnr" in proc.stdout

    # the exported weights run in `podm eval` like any method, labelled as podm's own training
    rows = list(eval_rows(tmp_path, data_dir, "methods=[rpodm]", "datasets=[levin]", "limit=2",
                          f"method_cfg.rpodm.weights={run / 'rpodm.pt'}").values())
    assert rows[0]["method"] == "rpodm" and rows[0]["source"] == "recomputed (RPODM trained by podm)"
    assert 15 < rows[0]["psnr"] < 40

    resumed = tmp_path / "resumed"
    proc = _train(tmp_path, data_dir, cache, resumed, f"ckpt_path={last}", "trainer.max_steps=6")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 6
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = glob.glob(str(resumed / "tensorboard" / "**" / "events.out.tfevents*"), recursive=True)
    acc = EventAccumulator(events[0])
    acc.Reload()
    steps = [e.step for e in acc.Scalars("val/psnr")]
    assert steps and min(steps) >= 4  # it went on from the saved step, not from 0


def test_multirun_sweeps_stage_counts_into_separate_dirs(tmp_path, data_dir, cache):
    sweep = tmp_path / "sweep"
    proc = run_podm(["train", "-m", *TINY, f"train_data.cache={cache}", "model.stages=1,2",
                     f"hydra.sweep.dir={sweep}", "trainer.max_steps=2"], tmp_path, env={"PODM_DATA": str(data_dir)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    stages = [read_weights_file(sweep / str(i) / "rpodm.pt")["config"]["stages"] for i in (0, 1)]
    assert stages == [1, 2]


@pytest.mark.parametrize(
    "override, fragment",
    [("ckpt_path=/nowhere/last.ckpt", "ckpt_path /nowhere/last.ckpt does not exist"),
     ("loss=huber", "unknown loss 'huber'"),
     ("model.mu_mode=magic", "mu_mode must be one of")],
)
def test_bad_training_input_is_one_line_exit_2(tmp_path, data_dir, cache, override, fragment):
    proc = _train(tmp_path, data_dir, cache, tmp_path / "bad", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = error_lines(proc)
    assert len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "bad" / "rpodm.pt").exists()


class _Payload:
    """Unpickling this would run ``os.system``: a safe load must refuse it without running anything."""

    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("kind", ["text", "payload", "not_lightning"])
def test_bad_checkpoint_is_refused_before_training(tmp_path, data_dir, cache, kind):
    import pickle

    ckpt = tmp_path / "last.ckpt"
    if kind == "text":
        ckpt.write_text("this is not a checkpoint\n")
    elif kind == "payload":
        ckpt.write_bytes(pickle.dumps({"state_dict": _Payload()}))
    else:
        torch.save({"weights": torch.zeros(3)}, ckpt)
    proc = _train(tmp_path, data_dir, cache, tmp_path / "bad", f"ckpt_path={ckpt}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = error_lines(proc)
    assert len(lines) == 1 and f"ckpt_path {ckpt}" in lines[0], lines
    assert "weights_only=False" not in proc.stderr and "\x1b[" not in proc.stderr
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "bad").exists()  # refused before training: no run directory is left behind
    expected = {"text": "not a torch checkpoint", "payload": "Python objects", "not_lightning": "no state_dict"}
    assert expected[kind] in lines[0]


def test_train_logs_each_line_once_without_adverts(tmp_path, data_dir, cache):
    proc = _train(tmp_path, data_dir, cache, tmp_path / "run", "callbacks.rich_progress=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "Epoch 1/-2" not in out and "/-" not in out.replace("--", "")
    assert "litmodels" not in out and "Tip:" not in out
    messages = [line.split("] ", 1)[-1] for line in proc.stdout.splitlines() + proc.stderr.splitlines()
                if line.strip() and "━" not in line]
    repeated = {m for m in messages if messages.count(m) > 1 and len(m) > 20}
    assert not repeated, repeated
    assert not [p for p in (tmp_path / "run").glob("*.log") if p.stat().st_size == 0]
