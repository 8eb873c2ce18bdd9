import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from emotion_core.dataset import write_dataset
from emotion_core.labels import EMOTIONS, MIKELS8
from emotion_core.model import ModelConfig, build_model, read_checkpoint
from tests.conftest import write_demo_dataset
from training.schedule import Stage, check_schedule, load_schedule, paper_schedule, schedule_to_dicts
from training.train import TrainConfig, _optimizer_for, train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("tiny"), 6, size=32, seed=1, split=(0.66, 0.34, 0.0))


def test_paper_schedule_trains_exactly_the_right_tensors():
    model = build_model(ModelConfig(pretrained=False, input_size=64))
    stages = paper_schedule(model, epochs=1)
    assert [s.name for s in stages] == ["head", "conv5_4", "conv5_3", "conv5_2", "conv5_1", "all"]
    head = {"classifier.1.weight", "classifier.1.bias"}
    convs = ["features.34", "features.32", "features.30", "features.28"]
    expected = [head] + [head | {f"{c}.{p}" for c in convs[:k] for p in ("weight", "bias")} for k in range(1, 5)]
    expected.append({name for name, _ in model.named_parameters()})
    lrs = [1e-4, 1e-5, 1e-6, 1e-6, 1e-6, 1e-6]
    for stage, names, lr in zip(stages, expected, lrs):
        optimizer = _optimizer_for(model, stage)
        assert {n for n, p in model.named_parameters() if p.requires_grad} == names, stage.name
        assert [g["lr"] for g in optimizer.param_groups] == [lr] * len(optimizer.param_groups)
        optimized = {id(p) for g in optimizer.param_groups for p in g["params"]}
        assert optimized == {id(p) for n, p in model.named_parameters() if n in names}


def test_group_lr_overrides():
    model = build_model(ModelConfig(arch="vgg_small", input_size=32))
    optimizer = _optimizer_for(model, Stage("mix", ["head", "conv4_1"], 1e-5, 1, {"head": 1e-4}))
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == {"head": 1e-4, "conv4_1": 1e-5}


@pytest.mark.parametrize("text, message", [
    ("- {trainable: [head], lr: 1e-4, epocs: 2}", "stage 1: unknown key 'epocs'"),
    ("- {trainable: [head], lr: 1e-4}", "stage 1: missing key 'epochs'"),
    ("- {trainable: [head], lr: fast, epochs: 1}", "stage 1: lr and group_lrs must be numbers"),
    ("- [head", "not valid YAML"),
])
def test_schedule_file_errors(tmp_path, text, message):
    path = tmp_path / "schedule.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_schedule(path)


def test_unknown_layer_name_is_refused(tmp_path):
    path = tmp_path / "schedule.json"
    path.write_text('[{"trainable": ["head", "conv6_1"], "lr": 1e-5, "epochs": 1}]')
    model = build_model(ModelConfig(pretrained=False, input_size=64))
    with pytest.raises(ValueError, match="unknown layer 'conv6_1'; valid: head, features, all, conv1_1"):
        check_schedule(load_schedule(path), model)


def small_config(dataset: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(dataset=str(dataset), out=str(out), arch="vgg_small", input_size=32, pretrained=False,
                batch_size=8, workers=0, device="cpu", evaluate=False, seed=5)
    return TrainConfig(**{**base, **overrides})


STAGES = [Stage("head", ["head"], 1e-3, 2), Stage("all", ["all"], 1e-3, 2)]


def test_resume_ends_where_an_uninterrupted_run_ends(tiny_dataset, tmp_path):
    train(small_config(tiny_dataset, tmp_path / "straight"), STAGES)
    stopped = train(small_config(tiny_dataset, tmp_path / "resumed", stop_after=3), STAGES)
    assert stopped["stopped"]
    train(small_config(tiny_dataset, tmp_path / "resumed", resume=True), STAGES)
    a = read_checkpoint(tmp_path / "straight" / "last.pt")["state_dict"]
    b = read_checkpoint(tmp_path / "resumed" / "last.pt")["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    history = pd.read_csv(tmp_path / "resumed" / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert pd.read_csv(tmp_path / "straight" / "history.csv")["dev_acc"].tolist() == history["dev_acc"].tolist()


def test_two_process_ddp_matches_one_process(tiny_dataset, tmp_path):
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text("- {trainable: [all], lr: 1.0e-3, epochs: 2}\n")
    common = ["--dataset", str(tiny_dataset), "--arch", "vgg_small", "--input-size", "32", "--no-pretrained",
              "--no-batch-norm", "--dropout", "0", "--no-augment", "--batch-size", "8", "--workers", "0",
              "--device", "cpu", "--eval-split", "dev", "--schedule", str(schedule), "--seed", "3",
              "--target", "votes", "--spread", "wheel", "--mix", "0.5"]  # soft targets: each rank indexes its rows
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "training.train", *common, "--out", str(tmp_path / "one")],
                   check=True, cwd=ROOT, env=env, capture_output=True)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "training.train", *common, "--out", str(tmp_path / "two")],
                   check=True, cwd=ROOT, env=env, capture_output=True)
    # Same steps: the epoch losses agree to rounding. The weights agree to a fraction of one
    # step: Adam turns rounding noise in a gradient near zero into a step of up to lr (1e-3)
    # either way, so a tighter weight tolerance depends on the data; a wrong sharding or order
    # changes the losses and moves the weights by many steps.
    history = {n: pd.read_csv(tmp_path / n / "history.csv") for n in ("one", "two")}
    np.testing.assert_allclose(history["two"]["train_loss"], history["one"]["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(history["two"]["dev_loss"], history["one"]["dev_loss"], rtol=1e-4)
    one = read_checkpoint(tmp_path / "one" / "last.pt")["state_dict"]
    two = read_checkpoint(tmp_path / "two" / "last.pt")["state_dict"]
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=5e-4, msg=key)
    assert read_checkpoint(tmp_path / "two" / "last.pt")["epoch"] == 2
    # the final evaluation is sharded over both processes and gathered in manifest order
    one_pred = pd.read_parquet(tmp_path / "one" / "predictions.parquet")
    two_pred = pd.read_parquet(tmp_path / "two" / "predictions.parquet")
    assert two_pred["image_id"].tolist() == one_pred["image_id"].tolist()
    probabilities = [c for c in one_pred.columns if c.startswith("p_")]
    np.testing.assert_allclose(two_pred[probabilities], one_pred[probabilities], atol=1e-4)
    assert two_pred["cam_index"].tolist() == list(range(len(two_pred)))
    np.testing.assert_allclose(np.load(tmp_path / "two" / "cams.npy").astype(float),
                               np.load(tmp_path / "one" / "cams.npy").astype(float), atol=5e-3)
    assert len(pd.read_parquet(tmp_path / "two" / "attributes.parquet")) == len(two_pred)


def test_dataset_without_dev_split_is_refused(tmp_path, tiny_dataset):
    manifest = pd.read_parquet(tiny_dataset / "manifest.parquet")
    manifest["split"] = "train"
    manifest["path"] = [str(tiny_dataset / p) for p in manifest["path"]]
    write_dataset(tmp_path / "nodev", manifest, {})
    with pytest.raises(ValueError, match="no dev split"):
        train(small_config(tmp_path / "nodev", tmp_path / "run"), STAGES)
    assert not (tmp_path / "run").exists()


def test_end_of_training_evaluates_for_the_dashboard(tiny_dataset, tmp_path):
    result = train(small_config(tiny_dataset, tmp_path / "run", evaluate=True, eval_split="dev"),
                   [Stage("all", ["all"], 1e-3, 1)])
    assert set(result["metrics"]) == {"dev"}
    assert (tmp_path / "run" / "predictions.parquet").exists() and (tmp_path / "run" / "metrics.json").exists()
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["classes"] == MIKELS8.to_dict()
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert [c for c in history if c.startswith("dev_recall_")] == [f"dev_recall_{e}" for e in EMOTIONS]


def test_search_writes_its_table(tiny_dataset, tmp_path):
    from training.search import load_configs, paper_grid, search

    assert len(paper_grid()) == 27
    grid = tmp_path / "grid.yaml"
    grid.write_text("- {fc: '8', lr: 1.0e-3, dropout: 0.5}\n- {fc: 16x8, lr: 1.0e-3, dropout: 0.4}\n")
    table = search(small_config(tiny_dataset, tmp_path), load_configs(grid), tmp_path / "search", epochs=1)
    saved = pd.read_csv(tmp_path / "search" / "results.csv")
    assert saved["FC Layers"].astype(str).tolist() == ["8", "16x8"]
    assert saved["Parameters"].iloc[1] > saved["Parameters"].iloc[0]
    markdown = (tmp_path / "search" / "results.md").read_text()
    assert f"{table['Dev Accuracy'].iloc[0]:.1%}" in markdown and "| 16x8 | 0.001 | 0.4 |" in markdown
    grid.write_text("- {fc: '8', learning_rate: 1.0e-3}\n")
    with pytest.raises(ValueError, match="config 1: unknown key 'learning_rate'"):
        load_configs(grid)


def test_search_paper_schedule_uses_the_config_lr_for_the_head():
    from training.search import stages_for

    config = small_config(Path("."), Path("."))
    stages = stages_for({"fc": "8", "lr": 3e-4, "dropout": 0.5}, "paper", 2, config)
    assert [s.lr for s in stages] == [3e-4, 1e-5, 1e-6, 1e-6, 1e-6, 1e-6]
    with pytest.raises(ValueError, match="valid: head, paper"):
        stages_for({"fc": "8", "lr": 3e-4, "dropout": 0.5}, "fast", 2, config)


def test_balanced_sampler_and_class_weights():
    from training.sampling import GlobalBatchSampler
    from training.train import _class_weights

    labels = [0] * 90 + [1] * 10
    order = GlobalBatchSampler(labels, 10, seed=0, balanced=True).global_order()
    share_of_rare = float(np.isin(order.numpy(), np.arange(90, 100)).mean())
    assert 0.35 < share_of_rare < 0.65  # about half, against 10% without balancing
    plain = GlobalBatchSampler(labels, 10, seed=0).global_order()
    assert sorted(plain.tolist()) == list(range(100))
    weights = _class_weights(pd.DataFrame({"label_idx": labels}), torch.device("cpu"), 3)
    assert weights[1] / weights[0] == pytest.approx(9.0) and len(weights) == 3


def test_ranks_split_every_global_batch():
    from training.sampling import GlobalBatchSampler

    labels = list(range(8)) * 4
    single = list(GlobalBatchSampler(labels, 8, seed=1))
    ranks = [list(GlobalBatchSampler(labels, 8, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    for whole, part0, part1 in zip(single, *ranks):
        assert sorted(part0 + part1) == sorted(whole) and len(part0) == len(part1) == 4


def test_shipped_schedule_and_grid_files_match_the_paper():
    from training.search import load_configs

    model = build_model(ModelConfig(pretrained=False, input_size=64))
    assert load_schedule(ROOT / "assets" / "paper_schedule.yaml") == paper_schedule(model, epochs=3)
    assert len(load_configs(ROOT / "assets" / "paper_grid.yaml")) == 7


def test_early_stopping_ends_a_stage_after_patience_epochs():
    from training.train import TrainState, _advance

    state, stage = TrainState(), Stage("head", ["head"], 1e-4, 5)
    improved = [_advance(state, stage, acc, patience=2) for acc in (0.5, 0.6, 0.55, 0.58)]
    assert improved == [True, True, False, False]
    assert (state.stage, state.stage_epoch, state.global_epoch, state.best_dev_acc) == (1, 0, 4, 0.6)
    no_patience = TrainState()
    for acc in (0.5, 0.4, 0.3):
        _advance(no_patience, stage, acc, patience=0)
    assert (no_patience.stage, no_patience.stage_epoch) == (0, 3)


def test_resume_after_a_real_kill(tiny_dataset, tmp_path):
    """SIGKILL in the middle of training, then --resume: same weights as a run never killed."""
    import signal
    import time

    schedule = tmp_path / "schedule.yaml"
    schedule.write_text("- {trainable: [head], lr: 1.0e-3, epochs: 3}\n- {trainable: [all], lr: 1.0e-3, epochs: 3}\n")
    args = [sys.executable, "-m", "training.train", "--dataset", str(tiny_dataset), "--arch", "vgg_small",
            "--input-size", "32", "--no-pretrained", "--batch-size", "8", "--workers", "0", "--device", "cpu",
            "--no-evaluate", "--schedule", str(schedule), "--seed", "9"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(args + ["--out", str(tmp_path / "straight")], check=True, cwd=ROOT, env=env, capture_output=True)
    victim = subprocess.Popen(args + ["--out", str(tmp_path / "killed")], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert last.exists(), "training never finished an epoch"
    epochs_before = read_checkpoint(last)["train_state"]["global_epoch"]
    subprocess.run(args + ["--out", str(tmp_path / "killed"), "--resume"], check=True, cwd=ROOT, env=env,
                   capture_output=True)
    straight = read_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = read_checkpoint(last)
    assert resumed["train_state"]["global_epoch"] == 6 and epochs_before < 6
    for key in straight["state_dict"]:
        torch.testing.assert_close(straight["state_dict"][key], resumed["state_dict"][key], msg=key)
    assert pd.read_csv(tmp_path / "killed" / "history.csv")["epoch"].tolist() == [1, 2, 3, 4, 5, 6]


# ---- --resume refuses what it cannot continue ---------------------------------------------

RESUME_ARGS = ["--arch", "vgg_small", "--input-size", "32", "--no-pretrained", "--batch-size", "8", "--workers", "0",
               "--device", "cpu", "--no-evaluate", "--epochs-per-stage", "1", "--seed", "5"]


@pytest.fixture(scope="module")
def stopped_run(tiny_dataset, tmp_path_factory) -> Path:
    """A run of the paper schedule (6 stages of 1 epoch) stopped after its first epoch."""
    from training.cli import run_main
    from training.train import get_args_parser, main

    out = tmp_path_factory.mktemp("stopped") / "run"
    run_main(main, get_args_parser().parse_args(
        ["--dataset", str(tiny_dataset), "--out", str(out), *RESUME_ARGS, "--stop-after", "1"]))
    return out


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _other_dataset(tiny_dataset: Path, tmp_path: Path) -> Path:
    """The same images with one vote count changed: another manifest."""
    manifest = pd.read_parquet(tiny_dataset / "manifest.parquet")
    manifest["path"] = [str(tiny_dataset / p) for p in manifest["path"]]
    manifest.loc[0, "agree"] = int(manifest.loc[0, "agree"]) + 1
    write_dataset(tmp_path / "other", manifest, {})
    return tmp_path / "other"


def _relabel_saved_classes(run: Path) -> None:
    """As if the saved run had been trained on another class set."""
    payload = read_checkpoint(run / "last.pt")
    payload["classes"] = payload["model"]["classes"] = [*EMOTIONS[:-1], "neutral"]
    torch.save(payload, run / "last.pt")


@pytest.mark.parametrize("change, message", [
    (["--arch", "vgg19"], "the architecture differs from the saved run (vgg_small with batch norm saved, vgg19 now)"),
    (["--no-batch-norm"], "the architecture differs from the saved run "
                          "(vgg_small with batch norm saved, vgg_small without batch norm now)"),
    (["--fc", "16x8"], "the head differs from the saved run (fc 8 dropout 0.5 saved, fc 16x8 dropout 0.5 now)"),
    (["--dropout", "0.2"], "the head differs from the saved run (fc 8 dropout 0.5 saved, fc 8 dropout 0.2 now)"),
    (["--input-size", "64"], "the input size differs from the saved run (32 saved, 64 now)"),
    (["--epochs-per-stage", "2"], "the number of epochs per stage differs from the saved run "
                                  "(1, 1, 1, 1, 1, 1 saved, 2, 2, 2, 2, 2, 2 now)"),
    ("other schedule", "the schedule differs from the saved run (stages ['head', 'conv4_1', 'conv3_1', "
                       "'conv2_1', 'conv1_1', 'all'] saved, ['all'] now)"),
    ("other lr", "the schedule differs from the saved run (stage 1 (head) lr 0.0001 saved, 0.001 now)"),
    ("other dataset", "the dataset differs from the saved run (manifest sha256 "),
    (["--target", "votes"], "the training target differs from the saved run (onehot saved, votes (spread uniform) now)"),
    ("other classes", "the class set differs from the saved run (amusement, anger, awe, contentment, disgust, "
                      "excitement, fear, neutral saved, amusement, anger, awe, contentment, disgust, excitement, "
                      "fear, sadness now)"),
])
def test_resume_refuses_a_different_run_in_one_line(stopped_run, tiny_dataset, tmp_path, capsys, monkeypatch,
                                                    change, message):
    import shutil

    from training.cli import run_main
    from training.train import get_args_parser, main

    monkeypatch.delenv("EMOLENS_DEBUG", raising=False)
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    if change == "other schedule":
        (tmp_path / "s.yaml").write_text("- {name: all, trainable: [all], lr: 1.0e-4, epochs: 1}\n")
        change = ["--schedule", str(tmp_path / "s.yaml")]
    elif change == "other lr":  # the paper's stages, with the head at 1e-3 instead of 1e-4
        stages = schedule_to_dicts(paper_schedule(build_model(ModelConfig(arch="vgg_small", input_size=32)), 1))
        stages[0]["lr"] = 1e-3
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(stages))
        change = ["--schedule", str(tmp_path / "s.yaml")]
    elif change == "other dataset":
        change = ["--dataset", str(_other_dataset(tiny_dataset, tmp_path))]
    elif change == "other classes":
        _relabel_saved_classes(run)
        change = []
    before = _file_bytes(run)
    args = get_args_parser().parse_args(["--dataset", str(tiny_dataset), "--out", str(run), *RESUME_ARGS, *change,
                                         "--resume"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run_main(main, args)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: cannot resume {run}: ") and message in err, err
    assert _file_bytes(run) == before  # nothing overwritten, nothing added


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resume_restores_the_cuda_rng_state():
    """Dropout on a GPU draws from the CUDA generator: resuming must continue it too."""
    from training.train import _restore

    model = build_model(ModelConfig(arch="vgg_small", input_size=32))
    device = torch.device("cuda", 0)
    torch.cuda.manual_seed(11)
    wanted = torch.cuda.get_rng_state(device)
    torch.cuda.manual_seed(12)
    saved = {"state_dict": model.state_dict(), "rng": torch.get_rng_state(), "cuda_rng": wanted, "history": [],
             "train_state": {"stage": 0, "stage_epoch": 1, "global_epoch": 1}}
    _restore(saved, model, device)
    assert torch.equal(torch.cuda.get_rng_state(device), wanted)


@pytest.mark.parametrize("wrapped", ["bare", "ddp"])
def test_frozen_batch_norms_keep_their_running_stats_while_the_head_trains(tiny_dataset, tmp_path, wrapped):
    """A head or partial stage leaves frozen batch norms as they were: their running statistics
    would otherwise drift in train mode. Under DDP the model is runner.module."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from training.distributed import DistInfo
    from training.train import TargetLoss, _train_steps

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="vgg_small", fc="8", input_size=32, pretrained=False, batch_norm=True))
    stages = paper_schedule(model, epochs=1)  # head, conv4_1 (features.12-13 + head), ...
    batch = (torch.randn(4, 3, 32, 32) * 3 + 1, torch.tensor([0, 3, 5, 7]), torch.arange(4), torch.ones(4))
    config = small_config(tiny_dataset, tmp_path)
    loss_fn = TargetLoss(None)  # one-hot cross-entropy
    if wrapped == "ddp":
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        for stage, trained_norms in ((stages[0], set()), (stages[1], {"features.13"})):
            optimizer = _optimizer_for(model, stage)
            runner = DistributedDataParallel(model) if wrapped == "ddp" else model
            norms = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
            before = {n: {k: b.clone() for k, b in m.named_buffers()} for n, m in norms.items()}
            head_before = model.classifier[1].weight.detach().clone()
            _train_steps(runner, [batch], optimizer, loss_fn, config, torch.device("cpu"), DistInfo(), stage.name)
            assert not torch.equal(model.classifier[1].weight, head_before)  # the head did train
            assert model.classifier.training  # dropout stays on
            drifted = {n for n, m in norms.items()
                       if not all(torch.equal(b, before[n][k]) for k, b in m.named_buffers())}
            assert drifted == trained_norms, stage.name
            assert {n for n, m in norms.items() if m.training} == trained_norms
    finally:
        if wrapped == "ddp":
            dist.destroy_process_group()
