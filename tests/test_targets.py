"""Soft training targets (emotion_core.targets) and vote-aware training (training.train --target)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emotion_core.import_emotion6 import EMOTION6_CLASSES
from emotion_core.labels import EMOTIONS, MIKELS8, ClassSet
from emotion_core.model import read_checkpoint
from emotion_core.targets import (FROM_AGREE, FROM_DISTRIBUTION, ONE_HOT, TargetOptions, build_targets, onehot,
                                  smoothed, spread_weights, vote_targets)
from training.schedule import Stage
from training.train import TargetLoss, TrainConfig, train
from tests.conftest import write_demo_dataset

I = {name: i for i, name in enumerate(EMOTIONS)}  # FI's order: amusement, anger, awe, contentment, ...


def fi_rows(*votes: tuple[str, float, float]) -> pd.DataFrame:
    """Manifest rows of FI: (label, agree, disagree); NaN for an unknown count."""
    return pd.DataFrame({"image_id": [str(i) for i in range(len(votes))], "label": [v[0] for v in votes],
                         "agree": pd.array([v[1] for v in votes], dtype="Float64").round().astype("Int64"),
                         "disagree": pd.array([v[2] for v in votes], dtype="Float64").round().astype("Int64")})


def test_onehot_and_smoothed_rows():
    labels = np.array([0, 2])
    assert onehot(labels, 3).tolist() == [[1, 0, 0], [0, 0, 1]]
    table = smoothed(labels, 4, epsilon=0.2)  # (1 - 0.2) e_y + 0.2 / 4
    np.testing.assert_allclose(table, [[0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05]], rtol=1e-6)
    assert table.dtype == np.float32


def test_agree_share_on_the_label_spread_uniformly():
    targets = vote_targets(fi_rows(("awe", 3, 2), ("fear", 5, 0)), MIKELS8, "uniform")
    row = targets.table[0]
    assert row[I["awe"]] == pytest.approx(0.6)
    others = np.delete(row, I["awe"])
    np.testing.assert_allclose(others, 0.4 / 7, rtol=1e-6)
    assert targets.table[1].tolist() == onehot(np.array([I["fear"]]), 8)[0].tolist()  # unanimous: one-hot
    np.testing.assert_allclose(targets.table.sum(axis=1), 1.0, rtol=1e-6)
    assert targets.table.dtype == np.float32 and targets.source.tolist() == [FROM_AGREE, FROM_AGREE]


def test_polarity_spread_stays_on_the_labels_polarity():
    row = vote_targets(fi_rows(("awe", 3, 1)), MIKELS8, "polarity").table[0]
    # awe is positive: the other positives (amusement, contentment, excitement) share the disagree quarter
    expected = np.zeros(8)
    expected[I["awe"]] = 0.75
    expected[[I["amusement"], I["contentment"], I["excitement"]]] = 0.25 / 3
    np.testing.assert_allclose(row, expected, rtol=1e-6, atol=1e-7)


def test_wheel_spread_by_inverse_wheel_distance():
    row = vote_targets(fi_rows(("awe", 2, 2)), MIKELS8, "wheel").table[0]
    # wheel: amusement contentment AWE excitement fear sadness disgust anger; steps from awe:
    steps = {"contentment": 1, "excitement": 1, "amusement": 2, "fear": 2, "anger": 3, "sadness": 3, "disgust": 4}
    norm = sum(1 / d for d in steps.values())  # 47/12
    assert norm == pytest.approx(47 / 12)
    assert row[I["awe"]] == pytest.approx(0.5)
    for name, d in steps.items():
        assert row[I[name]] == pytest.approx(0.5 * (1 / d) / norm), name
    assert row[I["contentment"]] == pytest.approx(0.5 * 12 / 47) and row[I["disgust"]] == pytest.approx(0.5 * 3 / 47)


def test_spreads_fall_back_to_uniform_where_the_class_set_has_no_rule():
    plain = ClassSet(("cats", "dogs", "birds"))
    for spread in ("wheel", "polarity"):
        weights, notes = spread_weights(plain, spread)
        np.testing.assert_allclose(weights, (1 - np.eye(3)) / 2)
        assert len(notes) == 1 and "uniformly" in notes[0]
    # Emotion6: joy is the only positive and neutral the only neutral class; surprise has no polarity
    weights, notes = spread_weights(EMOTION6_CLASSES, "polarity")
    index = EMOTION6_CLASSES.index
    np.testing.assert_allclose(weights[index["anger"]][[index[n] for n in ("disgust", "fear", "sadness")]], 1 / 3)
    np.testing.assert_allclose(weights[index["joy"]], (1 - np.eye(7))[index["joy"]] / 6)
    assert "joy" in notes[0] and "neutral" in notes[0] and "surprise" in notes[0]


def test_vote_distributions_are_normalised_and_missing_votes_fall_back_to_one_hot():
    """LDL counts (and Emotion6 shares) become the target as they are, normalised; the spread does not apply."""
    frame = fi_rows(("contentment", 6, 5), ("awe", np.nan, np.nan), ("fear", 0, 0), ("anger", 2, 1))
    counts = {"amusement": 0, "anger": 0, "awe": 1, "contentment": 6, "disgust": 0, "excitement": 1, "fear": 2,
              "sadness": 1}
    for name, count in counts.items():
        frame[f"votes_{name}"] = pd.array([count, pd.NA, pd.NA, pd.NA], dtype="Int64")
    targets = vote_targets(frame, MIKELS8, "wheel")
    np.testing.assert_allclose(targets.table[0], [counts[e] / 11 for e in EMOTIONS], rtol=1e-6)
    assert targets.table[1].tolist() == onehot(np.array([I["awe"]]), 8)[0].tolist()   # no votes recorded
    assert targets.table[2].tolist() == onehot(np.array([I["fear"]]), 8)[0].tolist()  # all votes 0
    assert targets.table[3][I["anger"]] == pytest.approx(2 / 3)                        # agree/disagree, no distribution
    assert targets.source.tolist() == [FROM_DISTRIBUTION, ONE_HOT, ONE_HOT, FROM_AGREE]
    assert targets.counts()[ONE_HOT] == 2 and "2 with no votes: one-hot" in targets.summary()
    shares = pd.DataFrame({"image_id": ["a"], "label": ["joy"],
                           **{f"votes_{n}": [p] for n, p in zip(EMOTION6_CLASSES.names,
                                                                 (0.1, 0.0, 0.2, 0.5, 0.0, 0.2, 0.0))}})
    row = build_targets(shares, EMOTION6_CLASSES, TargetOptions(target="votes")).table[0]
    np.testing.assert_allclose(row, [0.1, 0.0, 0.2, 0.5, 0.0, 0.2, 0.0], rtol=1e-6)


@pytest.mark.parametrize("options, message", [
    (TargetOptions(target="soft"), "unknown target 'soft'; valid: onehot, votes, smoothed"),
    (TargetOptions(target="votes", spread="near"), "unknown spread 'near'; valid: uniform, polarity, wheel"),
    (TargetOptions(target="smoothed", epsilon=1.0), "--epsilon must be in [0, 1)"),
    (TargetOptions(target="votes", mix=1.5), "--mix must be in [0, 1]"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        options.check()


@pytest.mark.parametrize("options, message", [
    (TargetOptions(target="onehot", mix=0.5), "--mix 0.5 does not apply to --target onehot (only to --target votes "
                                              "or smoothed); leave it out"),
    (TargetOptions(target="smoothed", spread="wheel"), "--spread wheel does not apply to --target smoothed"),
    (TargetOptions(target="onehot", spread="polarity"), "--spread polarity does not apply to --target onehot"),
    (TargetOptions(target="votes", epsilon=0.2), "--epsilon 0.2 does not apply to --target votes"),
    (TargetOptions(target="onehot", epsilon=0.05), "--epsilon 0.05 does not apply to --target onehot"),
])
def test_a_flag_the_target_ignores_is_refused(options, message):
    with pytest.raises(ValueError) as refused:
        options.check()
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_flags_that_apply_are_accepted():
    for options in (TargetOptions(), TargetOptions(target="votes", spread="wheel", mix=0.3),
                    TargetOptions(target="smoothed", epsilon=0.2, mix=0.5)):
        options.check()


def test_training_with_a_flag_the_target_ignores_writes_nothing(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="--mix 0.5 does not apply to --target onehot"):
        train(config(tiny_dataset, tmp_path / "run", mix=0.5), [Stage("all", ["all"], 1e-3, 1)])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("run_json, expected", [
    ({"config": {"target": "votes", "spread": "wheel", "epsilon": 0.1, "mix": 0.0},
      "target": {"train_images": {"agree/disagree votes": 12, "vote distribution": 0}}}, "votes (wheel spread)"),
    ({"config": {"target": "votes", "spread": "uniform", "epsilon": 0.1, "mix": 0.5},
      "target": {"train_images": {"agree/disagree votes": 0, "vote distribution": 30}}}, "votes (mix 0.5)"),
    ({"config": {"target": "smoothed", "spread": "uniform", "epsilon": 0.2, "mix": 0.0}}, "smoothed labels (ε 0.2)"),
    ({"config": {"target": "onehot", "spread": "uniform", "epsilon": 0.1, "mix": 0.0}}, "one-hot"),
    ({"config": {"arch": "vgg19", "lr": 1e-3}}, "one-hot"),  # trained before targets existed
    ({"source": "imported predictions", "predictions": "x.csv"}, None),
    ({"source": "imported model", "model": {"arch": "vgg19"}}, None),
    (None, None),  # no run.json
    # a hand-edited or foreign run.json with other types: unknown, never an error on the pages that show it
    ({"config": {"target": "onehot"}, "target": "onehot"}, "one-hot"),
    ({"config": {"target": "smoothed", "epsilon": "0.2"}}, None),
    ({"config": {"target": "votes", "mix": "0.5"}}, None),
    ({"config": {"target": "votes"}, "target": {"train_images": {"agree/disagree votes": None}}}, None),
    ({"config": {"target": "votes"}, "target": {"train_images": [1]}}, None),
])
def test_what_a_run_trained_on_is_read_from_its_run_json(tmp_path, run_json, expected):
    import json

    from emotion_core.targets import trained_on

    if run_json is not None:
        (tmp_path / "run.json").write_text(json.dumps(run_json))
    assert trained_on(tmp_path) == expected


def test_mixed_loss_is_the_weighted_sum_and_soft_onehot_equals_cross_entropy():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3]])
    labels = torch.tensor([0, 2])
    table = torch.tensor([[0.6, 0.4, 0.0], [0.1, 0.2, 0.7]])
    rows = torch.tensor([1, 0])  # the batch's positions in the table
    log_p = torch.log_softmax(logits, 1)
    soft = -(table[rows] * log_p).sum(1)
    hard = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(TargetLoss(table)(logits, labels, rows), soft)
    torch.testing.assert_close(TargetLoss(table, mix=0.25)(logits, labels, rows), 0.75 * soft + 0.25 * hard)
    torch.testing.assert_close(TargetLoss(None)(logits, labels, rows), hard)
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    torch.testing.assert_close(TargetLoss(one_hot)(logits, labels, torch.arange(2)), hard)


# ---- training towards the votes -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_demo_dataset(tmp_path_factory.mktemp("tiny"), 6, size=32, seed=1, split=(0.66, 0.34, 0.0))


def config(dataset: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(dataset=str(dataset), out=str(out), arch="vgg_small", input_size=32, pretrained=False,
                batch_size=8, workers=0, device="cpu", evaluate=False, seed=5, augment=False, dropout=0.0)
    return TrainConfig(**{**base, **overrides})


def _kl_to_targets(run: Path, dataset: Path, options: TargetOptions) -> float:
    """Mean KL(t || p) over the train images, of the run's last weights."""
    from emotion_core.dataset import read_dataset, split_rows
    from emotion_core.images import load_image
    from emotion_core.model import load_checkpoint
    from emotion_core.transforms import eval_transform

    manifest, classes = read_dataset(dataset)
    rows = split_rows(manifest, "train")
    model = load_checkpoint(run / "last.pt")[0]
    images = torch.stack([eval_transform(32)(load_image(p)) for p in rows["path"]])
    with torch.no_grad():
        log_p = torch.log_softmax(model(images), 1)
    t = torch.as_tensor(build_targets(rows, classes, options).table)
    return float((torch.where(t > 0, t * torch.log(t.clamp_min(1e-12)), 0) - t * log_p).sum(1).mean())


def test_a_few_steps_of_vote_training_lower_the_kl_to_the_votes_below_one_hot_training(tiny_dataset, tmp_path):
    """The same seed, weights, batches and steps towards the votes and towards the labels: the vote run must end
    nearer the votes. One-hot training lowers that KL too (most images are unanimous); after 3 epochs it was even
    lower than the vote run's, after 6 the vote run's was 0.68 of it, after 10 0.40 (measured once)."""
    options = TargetOptions(target="votes", spread="wheel")
    start = config(tiny_dataset, tmp_path / "start", target="votes", spread="wheel")
    train(start, [Stage("all", ["all"], 1e-12, 1)])  # the initial weights, saved (lr 0 is refused)
    stage = [Stage("all", ["all"], 2e-3, 8)]
    train(config(tiny_dataset, tmp_path / "trained", target="votes", spread="wheel"), stage)
    train(config(tiny_dataset, tmp_path / "onehot"), stage)
    before = _kl_to_targets(tmp_path / "start", tiny_dataset, options)
    after = _kl_to_targets(tmp_path / "trained", tiny_dataset, options)
    after_onehot = _kl_to_targets(tmp_path / "onehot", tiny_dataset, options)
    assert after < 0.8 * before, (before, after)
    assert after < after_onehot, (after, after_onehot)


def colour_dataset(out: Path) -> Path:
    """24 images of FI's eight (2 train and 1 dev per class), each one flat colour whose red channel, 10 i + 5,
    names it; the two train images of a class have different votes, so their targets differ."""
    from PIL import Image

    from emotion_core.dataset import write_dataset

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(24):
        Image.new("RGB", (32, 32), (10 * i + 5, 120, 60)).save(out / f"{i}.png")
        agree = 5 - i % 3  # 5/0, 4/1, 3/2
        rows.append({"image_id": f"img{i}", "path": f"{i}.png", "label": EMOTIONS[i % 8], "agree": agree,
                     "disagree": 5 - agree, "split": "train" if i < 16 else "dev"})
    write_dataset(out, pd.DataFrame(rows), {})
    return out


def test_each_image_gets_its_own_target_in_a_shuffled_batch(tmp_path, monkeypatch):
    """The loss of every training step is computed against the target table's rows the batch names; those rows
    must hold the targets of the very images in the batch (identified here by their colour), in shuffled order."""
    import training.train as train_module
    from emotion_core.dataset import read_dataset
    from emotion_core.transforms import IMAGENET_MEAN, IMAGENET_STD

    dataset = colour_dataset(tmp_path / "colours")
    manifest, classes = read_dataset(dataset)
    options = TargetOptions(target="votes", spread="wheel")
    expected = dict(zip(manifest["image_id"], build_targets(manifest, classes, options).table))
    by_red = {10 * i + 5: f"img{i}" for i in range(24)}
    original, seen = train_module._train_steps, []

    def spying_steps(runner, loader, optimizer, loss_fn, *args):
        batches = []

        def recorded():
            for batch in loader:
                batches.append(batch)
                yield batch

        def spy(logits, labels, rows):
            red = batches[-1][0][:, 0].mean(dim=(1, 2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]  # (B,) in [0, 1]
            ids = [by_red[int(round(float(v) * 255))] for v in red]
            wanted = torch.as_tensor(np.stack([expected[i] for i in ids]))
            torch.testing.assert_close(loss_fn.table[rows].cpu(), wanted)
            assert labels.tolist() == [classes.index[manifest.set_index("image_id").loc[i, "label"]] for i in ids]
            seen.extend(ids)
            return loss_fn(logits, labels, rows)

        return original(runner, recorded(), optimizer, spy, *args)

    monkeypatch.setattr(train_module, "_train_steps", spying_steps)
    train(config(dataset, tmp_path / "run", target="votes", spread="wheel", batch_size=4),
          [Stage("all", ["all"], 1e-3, 2)])
    train_ids = [f"img{i}" for i in range(16)]
    assert sorted(seen) == sorted(train_ids * 2)  # every train image, once an epoch
    assert seen[:16] != train_ids and seen[:16] != seen[16:]  # shuffled, and differently each epoch


def test_the_target_is_recorded_and_resume_keeps_it(tiny_dataset, tmp_path):
    import json

    stages = [Stage("all", ["all"], 1e-3, 2)]
    straight = config(tiny_dataset, tmp_path / "straight", target="votes", spread="polarity", mix=0.5)
    train(straight, stages)
    stopped = config(tiny_dataset, tmp_path / "resumed", target="votes", spread="polarity", mix=0.5, stop_after=1)
    assert train(stopped, stages)["stopped"]
    train(config(tiny_dataset, tmp_path / "resumed", target="votes", spread="polarity", mix=0.5, resume=True), stages)
    history = pd.read_csv(tmp_path / "resumed" / "history.csv")
    assert history["target"].tolist() == ["votes (spread polarity, mix 0.5)"] * 2
    np.testing.assert_allclose(history["train_loss"], pd.read_csv(tmp_path / "straight" / "history.csv")["train_loss"],
                               rtol=1e-5)
    saved = read_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["train_config"]
    assert (saved["target"], saved["spread"], saved["mix"]) == ("votes", "polarity", 0.5)
    run = json.loads((tmp_path / "resumed" / "run.json").read_text())
    assert run["config"]["target"] == "votes" and run["target"]["options"] == "votes (spread polarity, mix 0.5)"
    assert run["target"]["train_images"]["agree/disagree votes"] > 0


@pytest.mark.parametrize("change, message", [
    ({"target": "onehot", "spread": "uniform"},
     "the training target differs from the saved run (votes (spread wheel) saved, onehot now)"),
    ({"spread": "uniform"}, "(votes (spread wheel) saved, votes (spread uniform) now)"),
    ({"mix": 0.3}, "(votes (spread wheel) saved, votes (spread wheel, mix 0.3) now)"),
])
def test_resume_refuses_another_target_and_keeps_the_saved_run(tiny_dataset, tmp_path, change, message):
    stages = [Stage("all", ["all"], 1e-3, 2)]
    out = tmp_path / "run"
    train(config(tiny_dataset, out, target="votes", spread="wheel", stop_after=1), stages)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match="cannot resume") as refused:
        train(config(tiny_dataset, out, **{"target": "votes", "spread": "wheel", **change}, resume=True), stages)
    assert message in str(refused.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_votes_on_a_dataset_without_votes_is_refused_before_training(tiny_dataset, tmp_path):
    from emotion_core.dataset import write_dataset

    manifest = pd.read_parquet(tiny_dataset / "manifest.parquet")
    manifest["path"] = [str(tiny_dataset / p) for p in manifest["path"]]
    manifest = manifest.drop(columns=["agree", "disagree"])
    write_dataset(tmp_path / "novotes", manifest, {})
    with pytest.raises(ValueError, match="--target votes: no train image has votes"):
        train(config(tmp_path / "novotes", tmp_path / "run", target="votes"), [Stage("all", ["all"], 1e-3, 1)])
    assert not (tmp_path / "run").exists()
    # a fall-back target needs no votes
    train(config(tmp_path / "novotes", tmp_path / "smooth", target="smoothed"), [Stage("all", ["all"], 1e-3, 1)])
    assert pd.read_csv(tmp_path / "smooth" / "history.csv")["target"].tolist() == ["smoothed (epsilon 0.1)"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_soft_target_steps_never_wait_for_the_gpu():
    """The target table lives on the GPU and the batch's rows index it there: no synchronizing call."""
    from emotion_core.model import ModelConfig, build_model
    from training.distributed import DistInfo
    from training.train import _dev_sums, _optimizer_for, _train_steps

    device = torch.device("cuda", 0)
    model = build_model(ModelConfig(arch="vgg_small", input_size=32, pretrained=False)).to(device)
    table = torch.softmax(torch.randn(16, 8), 1).to(device)
    loss_fn = TargetLoss(table, weight=torch.ones(8, device=device), mix=0.3)
    generator = torch.Generator().manual_seed(0)
    batches = [tuple(t.pin_memory() for t in (torch.rand(4, 3, 32, 32, generator=generator), torch.arange(4),
                                              torch.arange(4) + 4 * k, torch.tensor([True, True, True, False])))
               for k in range(4)]
    optimizer = _optimizer_for(model, Stage("all", ["all"], 1e-3, 1))
    cfg = TrainConfig(dataset="", out="", arch="vgg_small", input_size=32, pretrained=False, device="cuda")
    _train_steps(model, batches[:1], optimizer, loss_fn, cfg, device, DistInfo(), "warm-up")
    _dev_sums(model, batches[:1], loss_fn, cfg, device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        sums = _train_steps(model, batches, optimizer, loss_fn, cfg, device, DistInfo(), "t")
        _dev_sums(model, batches, loss_fn, cfg, device)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert float(sums[2]) == 12 and torch.isfinite(sums).all()


# ---- the demo's votes ---------------------------------------------------------------------

def test_demo_votes_divide_on_the_ambiguous_looks():
    """Planted images (and the confounders that share their look) always have a disagree vote; plain
    images mostly agree, so vote-aware training has something to learn from the pictures."""
    from emotion_core.demo_data import generate

    items = generate(30, size=16, seed=3)
    planted = [i for i in items if i.trait and i.split != "train"]
    confounders = [i for i in items if i.trait and i.split == "train"]
    plain = [i for i in items if not i.trait]
    assert planted and confounders and all(i.agree + i.disagree == 5 and i.agree > i.disagree for i in items)
    assert all(i.disagree >= 1 for i in planted + confounders)
    assert np.mean([i.disagree == 0 for i in plain]) > 0.4


def test_demo_schedule_file_is_the_demo_runs_schedule():
    """README's demo commands pass assets/demo_schedule.yaml to training.train: the demo run's own schedule."""
    from training.demo import DemoConfig
    from training.schedule import load_schedule, single_stage

    demo = DemoConfig()
    assert load_schedule(Path(__file__).resolve().parent.parent / "assets" / "demo_schedule.yaml") == \
        single_stage(demo.lr, demo.epochs)
