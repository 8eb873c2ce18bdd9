"""Training targets: one probability distribution over the classes per image, (N, C) float32.

Learning from the votes (label-distribution learning, Yang et al. 2017) trains a softmax on the
annotators' vote distribution instead of one label. Every builder returns rows that sum to 1
(e_y below is the one-hot row of the label y, C the number of classes):

- onehot:    t = e_y (plain cross-entropy training, the paper's).
- smoothed:  t = (1 - eps) e_y + eps / C (label smoothing, Szegedy et al. 2016, as
             torch.nn.CrossEntropyLoss(label_smoothing=eps)); the baseline a vote-aware run must beat.
- votes:     per image, the first of these that it has:
  1. a vote distribution (votes_<class> for every class of the set; Flickr_LDL / Twitter_LDL counts,
     Emotion6 shares): t_k = v_k / sum_j v_j;
  2. FI's agree / disagree votes on its one label: a = agree / (agree + disagree) on the label and the
     rest spread over the other classes, t_y = a, t_j = (1 - a) w_yj / sum_{k != y} w_yk (j != y), with
     w by --spread (an ASSUMPTION about where a disagreeing voter's emotion lies, not data: FI's
     voters only rejected the label):
       uniform:  w_yj = 1;
       polarity: w_yj = 1 when j has y's polarity, else 0 (a label with no other class of its polarity,
                 or a class set without polarities: uniform, and a note says so);
       wheel:    w_yj = 1 / d(y, j), d the steps between y and j on Mikels' wheel (1..4), so on Mikels'
                 eight each wheel neighbour gets 12/47 of the rest, the opposite emotion 3/47
                 (a class set without the wheel: uniform, and a note says so);
  3. no usable votes (a count missing, or all votes 0): t = e_y, one-hot, and the summary counts them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emotion_core.emotion_metrics import class_polarities, wheel_distances
from emotion_core.labels import ClassSet
from emotion_core.ldl_metrics import voted_distributions
from emotion_core.runs import RUN_FILE, read_json
from emotion_core.votes import DISTRIBUTION_PREFIX, agreement

TARGETS = ("onehot", "votes", "smoothed")
SPREADS = ("uniform", "polarity", "wheel")
DEFAULT_EPSILON = 0.1
FROM_DISTRIBUTION, FROM_AGREE, ONE_HOT = "vote distribution", "agree/disagree votes", "no votes: one-hot"
FROM_LABEL = "label"  # onehot and smoothed targets: made from the label alone


@dataclass(frozen=True)
class TargetOptions:
    """What a run trains towards. mix: weight of the one-hot cross-entropy added to the soft one."""
    target: str = "onehot"
    spread: str = "uniform"
    epsilon: float = DEFAULT_EPSILON
    mix: float = 0.0

    def check(self) -> None:
        for name, value, valid in (("target", self.target, TARGETS), ("spread", self.spread, SPREADS)):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
        if not 0.0 <= self.epsilon < 1.0:
            raise ValueError(f"--epsilon must be in [0, 1), got {self.epsilon}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"--mix must be in [0, 1], got {self.mix}")
        # a flag the target ignores would be recorded in run.json as if it had shaped the run
        for flag, value, changed, applies_to in (
                ("--spread", self.spread, self.spread != "uniform", ("votes",)),
                ("--epsilon", f"{self.epsilon:g}", self.epsilon != DEFAULT_EPSILON, ("smoothed",)),
                ("--mix", f"{self.mix:g}", self.mix != 0.0, ("votes", "smoothed"))):
            if changed and self.target not in applies_to:
                raise ValueError(f"{flag} {value} does not apply to --target {self.target} (only to --target "
                                 f"{' or '.join(applies_to)}); leave it out")

    def words(self, spread_applies: bool = True) -> str:
        """For people: 'one-hot', 'votes (wheel spread)', 'smoothed labels (ε 0.1, mix 0.5)'. spread_applies
        False (no train image had agree/disagree votes: the distributions were used as they are) leaves the
        spread out."""
        if self.target == "onehot":
            return "one-hot"
        details = ([f"{self.spread} spread"] if self.target == "votes" and spread_applies else
                   [f"ε {self.epsilon:g}"] if self.target == "smoothed" else [])
        details += [f"mix {self.mix:g}"] if self.mix else []
        name = "smoothed labels" if self.target == "smoothed" else self.target
        return f"{name} ({', '.join(details)})" if details else name

    def describe(self) -> str:
        """One string naming everything that changes the targets: 'votes (spread wheel, mix 0.5)'."""
        if self.target == "onehot":
            return "onehot"
        detail = f"spread {self.spread}" if self.target == "votes" else f"epsilon {self.epsilon:g}"
        return f"{self.target} ({detail}{f', mix {self.mix:g}' if self.mix else ''})"


@dataclass
class Targets:
    table: np.ndarray                 # (N, C) float32, rows sum to 1
    source: np.ndarray                # (N,) where each row came from: FROM_DISTRIBUTION, FROM_AGREE, ONE_HOT or
                                      # FROM_LABEL
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: int((self.source == name).sum()) for name in (FROM_DISTRIBUTION, FROM_AGREE, ONE_HOT, FROM_LABEL)}

    def summary(self) -> str:
        shown = ", ".join(f"{n} images from {name}" if name != ONE_HOT else f"{n} with {name}"
                          for name, n in self.counts().items() if n)
        return "; ".join([shown, *self.notes])


def label_indices(frame: pd.DataFrame, classes: ClassSet) -> np.ndarray:
    if "label_idx" in frame:
        return frame["label_idx"].to_numpy(dtype=np.int64)
    return frame["label"].map(classes.index).to_numpy(dtype=np.int64)


def onehot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """t = e_y."""
    table = np.zeros((len(labels), num_classes), dtype=np.float32)
    table[np.arange(len(labels)), labels] = 1.0
    return table


def smoothed(labels: np.ndarray, num_classes: int, epsilon: float = DEFAULT_EPSILON) -> np.ndarray:
    """t = (1 - eps) e_y + eps / C."""
    return ((1.0 - epsilon) * onehot(labels, num_classes) + epsilon / num_classes).astype(np.float32)


def distribution_rows(frame: pd.DataFrame, classes: ClassSet) -> tuple[np.ndarray, np.ndarray]:
    """(mask of images with a usable distribution, (N, C) normalised distribution, zeros elsewhere).
    Usable: votes_<class> recorded for every class of the set, none negative, some vote."""
    distributions = voted_distributions(frame, classes.names)  # NaN rows: not usable
    if distributions is None:
        return np.zeros(len(frame), dtype=bool), np.zeros((len(frame), len(classes)), dtype=np.float32)
    columns = [DISTRIBUTION_PREFIX + name for name in classes.names]
    negative = np.flatnonzero((frame[columns].apply(pd.to_numeric, errors="coerce") < 0).any(axis=1))
    if len(negative):  # an error here, where voted_distributions only leaves the row out
        raise ValueError(f"image {frame['image_id'].iloc[negative[0]]!r}: a negative vote count")
    usable = ~np.isnan(distributions).any(axis=1)
    return usable, np.where(usable[:, None], distributions, 0.0).astype(np.float32)


def spread_weights(classes: ClassSet, spread: str) -> tuple[np.ndarray, list[str]]:
    """(C, C) weights w[y, j] of the other classes j for label y, rows summing to 1, zero diagonal (see the
    module docstring), and notes naming where the rule fell back to uniform."""
    n = len(classes)
    uniform = 1.0 - np.eye(n)
    weights, notes = uniform.copy(), []
    if spread == "polarity":
        polarities = class_polarities(classes) or [classes.polarity.get(name) for name in classes.names]
        alone = []
        for y, polarity in enumerate(polarities):
            same = np.array([p == polarity and polarity is not None for p in polarities]) & (uniform[y] > 0)
            if same.any():
                weights[y] = same
            else:
                alone.append(classes.names[y])
        if alone:
            notes.append(f"polarity spread: no other class shares the polarity of {', '.join(alone)}; "
                         "their rest is spread uniformly")
    elif spread == "wheel":
        steps = wheel_distances(classes)
        if steps is None:
            notes.append("wheel spread: the class set is not Mikels' eight (no wheel); the rest is spread uniformly")
        else:
            weights = np.divide(1.0, steps, out=np.zeros((n, n)), where=steps > 0)
    elif spread != "uniform":
        raise ValueError(f"unknown spread {spread!r}; valid: {', '.join(SPREADS)}")
    return weights / weights.sum(axis=1, keepdims=True), notes


def agree_rows(frame: pd.DataFrame, classes: ClassSet, spread: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(mask of images with usable agree/disagree votes, (N, C) targets, notes): the agree share on the label,
    the rest spread over the other classes by `spread`."""
    labels = label_indices(frame, classes)
    counts = frame.reindex(columns=["agree", "disagree"])  # an absent column: NaN, no vote
    share = agreement(counts["agree"], counts["disagree"]).to_numpy()  # NaN where there are no votes
    usable = ~np.isnan(share) & (counts.apply(pd.to_numeric, errors="coerce") >= 0).all(axis=1).to_numpy()
    share = np.where(usable, share, 0.0)
    weights, notes = spread_weights(classes, spread)
    table = (1.0 - share)[:, None] * weights[labels]
    table[np.arange(len(labels)), labels] = share
    table[~usable] = 0.0
    return usable, table.astype(np.float32), notes


def vote_targets(frame: pd.DataFrame, classes: ClassSet, spread: str = "uniform") -> Targets:
    """Each image's vote distribution, else its agree share spread by `spread`, else one-hot (module docstring)."""
    has_distribution, from_distribution = distribution_rows(frame, classes)
    has_agree, from_agree, notes = agree_rows(frame, classes, spread)
    has_agree &= ~has_distribution
    table = onehot(label_indices(frame, classes), len(classes))
    table[has_agree] = from_agree[has_agree]
    table[has_distribution] = from_distribution[has_distribution]
    source = np.where(has_distribution, FROM_DISTRIBUTION, np.where(has_agree, FROM_AGREE, ONE_HOT))
    return Targets(table, source, notes if has_agree.any() else [])


def build_targets(frame: pd.DataFrame, classes: ClassSet, options: TargetOptions) -> Targets:
    """The targets of the table's images (manifest rows, in order) for the run's options."""
    options.check()
    labels = label_indices(frame, classes)
    if options.target == "votes":
        return vote_targets(frame, classes, options.spread)
    if options.target == "smoothed":
        return Targets(smoothed(labels, len(classes), options.epsilon), np.full(len(frame), FROM_LABEL))
    return Targets(onehot(labels, len(classes)), np.full(len(frame), FROM_LABEL))


def trained_on(run_dir: str | os.PathLike) -> str | None:
    """What the run in run_dir trained towards, from its run.json (training.train writes the config, and the
    target's per-source image counts): 'one-hot' for a run trained before targets existed, TargetOptions.words
    otherwise; None for an imported model or imported predictions (unknown) and a run without a readable run.json."""
    try:
        run = read_json(Path(run_dir) / RUN_FILE)
    except (OSError, ValueError):
        return None
    config = run.get("config") if isinstance(run, dict) and "source" not in run else None
    if not isinstance(config, dict):
        return None
    names = ("target", "spread", "epsilon", "mix")
    try:  # a hand-edited or foreign run.json may hold other types: unknown, not an error on every page
        options = TargetOptions(**{name: config[name] for name in names if config.get(name) is not None})
        target = run.get("target")
        counts = (target.get("train_images") if isinstance(target, dict) else None) or {}
        return options.words(spread_applies=counts.get(FROM_AGREE, 1) > 0)  # unknown counts: say the spread
    except (TypeError, ValueError, AttributeError):
        return None
