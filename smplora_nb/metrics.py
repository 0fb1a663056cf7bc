"""Metrics: membership (scikit-learn underneath) and image quality (clean-fid underneath) - arXiv 2402.11989.

Membership, with members as the positive class and scores "higher = more likely a member":
  asr      balanced accuracy of the attack's decision rule (fixed on D_aux) on D_te (= accuracy when balanced)
  auc      area under the ROC curve;  auc_dev = |auc - 0.5| / 0.5, the paper's form (0 = random guessing)
  tpr_at_1pct_fpr, tpr_at_5pct_fpr   LiRA's convention (Carlini et al. 2022, its plotting code): the TPR at the
           largest FPR strictly below the target; ``None`` ("not measurable") with fewer than 1/target non-members.

Quality: FID and KID between generated and real images, from features of an extractor. SD-scale runs use clean-fid's
Inception; the offline ``tiny`` profile cannot download it and uses a small CNN trained here on the judge set
(``sets.judge``: every image outside the four private sets, all ten digits, so it knows the private classes;
``FeatureNet``): its numbers are *not comparable* to Inception FID. A digit classifier on the judge set also reads
the generated digits (``digit_accuracy``; chance = 0.1). A dataset without class labels (a ``folder:``) gets
label-free features instead (``PixelPCA``: principal components of pooled pixels, fitted on the judge set) and no
classifier accuracy.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import labels
from .sets import judge

TINY_FEATURES = ("digit-CNN logits (10-d) trained on the judge set, the images outside the four private sets "
                 "(not Inception: not comparable to published FID)")
LABEL_FREE_FEATURES = ("the first 10 principal components of 8x8-pooled pixels, fitted on the judge set, the images "
                       "outside the four private sets; no class labels (not Inception: not comparable to published FID)")


def tpr_at_fpr(y: np.ndarray, scores: np.ndarray, target: float) -> float | None:
    """TPR at the largest FPR < ``target`` (LiRA's convention); ``None`` when there are < 1/target negatives."""
    from sklearn.metrics import roc_curve

    y = np.asarray(y)
    if (y == 0).sum() * target < 1:
        return None
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
    return float(tpr[fpr < target - 1e-12].max())


def membership(scores_member, scores_nonmember, threshold: float) -> dict:
    """Membership metrics on one evaluation set (D_te) for a decision rule ``score >= threshold``."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    sm, sn = np.asarray(scores_member, float), np.asarray(scores_nonmember, float)
    if not (np.isfinite(sm).all() and np.isfinite(sn).all()):
        raise ValueError("attack scores must be finite")
    y, s = np.r_[np.ones(len(sm)), np.zeros(len(sn))], np.r_[sm, sn]
    auc = float(roc_auc_score(y, s))
    return {"asr": float(balanced_accuracy_score(y, s >= threshold)), "auc": auc, "auc_dev": abs(auc - 0.5) / 0.5,
            "tpr_at_1pct_fpr": tpr_at_fpr(y, s, 0.01), "tpr_at_5pct_fpr": tpr_at_fpr(y, s, 0.05),
            "n_member": len(sm), "n_nonmember": len(sn)}


def bootstrap_ci(scores_member, scores_nonmember, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap intervals of AUC, TPR@1%FPR and TPR@5%FPR on one evaluation set.

    Members and non-members are resampled with replacement separately (the set sizes stay fixed), ``n_boot`` times;
    the interval is the central ``level`` mass of the resampled statistic. TPR@1%FPR is ``None`` ("not
    measurable") with fewer than 100 non-members, as in ``membership``.
    """
    from sklearn.metrics import auc, roc_curve

    sm, sn = np.asarray(scores_member, float), np.asarray(scores_nonmember, float)
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(len(sm)), np.zeros(len(sn))]
    stats = {"auc": [], "tpr_at_1pct_fpr": [], "tpr_at_5pct_fpr": []}
    for _ in range(n_boot):                        # one ROC curve per resample gives all three statistics
        s = np.r_[sm[rng.integers(0, len(sm), len(sm))], sn[rng.integers(0, len(sn), len(sn))]]
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        stats["auc"].append(auc(fpr, tpr))
        for k, target in (("tpr_at_1pct_fpr", 0.01), ("tpr_at_5pct_fpr", 0.05)):   # as ``tpr_at_fpr``
            stats[k].append(None if len(sn) * target < 1 else float(tpr[fpr < target - 1e-12].max()))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {"level": level, "n_boot": n_boot}
    for k, v in stats.items():
        out[k] = None if v[0] is None else [float(np.percentile(v, lo)), float(np.percentile(v, hi))]
    return out


def roc(scores_member, scores_nonmember) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.metrics import roc_curve

    y = np.r_[np.ones(len(scores_member)), np.zeros(len(scores_nonmember))]
    fpr, tpr, _ = roc_curve(y, np.r_[scores_member, scores_nonmember])
    return fpr, tpr


# ------------------------------------------------------------------------------------------------ quality

def _gray_features(images) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32) / 255.0                    # (N, H, W, 3)
    return x.max(axis=-1).reshape(len(x), -1)                           # (N, H*W): stroke intensity, any colour


def digit_classifier(items):
    """Logistic regression on stroke intensity, fitted on ``items`` (the judge set: no member, no non-member)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, C=1.0)
    clf.fit(_gray_features(np.stack([it.image for it in items])), [it.label for it in items])
    return clf


def digit_accuracy(clf, images, labels) -> float:
    """Fraction of ``images`` that ``clf`` reads as their intended digit ``labels``."""
    return float(np.mean(clf.predict(_gray_features(images)) == np.asarray(labels)))


class FeatureNet(nn.Module):
    """A small digit CNN whose class logits stand in for Inception features in the tiny profile.

    The logits (10-d), not the 64-d penultimate activations: FID fits a Gaussian to each side, and the 108 generated
    and 108 member images of the tiny profile cannot estimate a 64-d covariance. On the development seeds the 64-d
    FID put a LoRA run whose samples were 82% the right digit next to the base model's (0% right), while the logit
    FID ranked every LoRA seed well ahead of the base model and MP-LoRA's collapsed samples behind it."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(64, n_classes)

    def forward(self, x):                                                # (B, 3, H, W) -> (B, n_classes)
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, images) -> np.ndarray:                            # (N, H, W, 3) uint8 -> (N, classes)
        self.eval()
        x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0
        return self(x).double().numpy()


def train_feature_net(items, epochs: int = 15, seed: int = 0) -> FeatureNet:
    """Fit ``FeatureNet`` as a digit classifier on ``items`` (the judge set) in a few seconds."""
    if any(it.label is None for it in items):
        raise ValueError("the tiny FID/KID extractor needs class labels on the judge set (digits has them)")
    torch.manual_seed(seed)
    net = FeatureNet(int(max(it.label for it in items)) + 1)
    x = torch.from_numpy(np.stack([it.image for it in items])).permute(0, 3, 1, 2).float() / 255.0
    y = torch.tensor([it.label for it in items])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def cached_feature_net(items, epochs: int = 15, seed: int = 0) -> FeatureNet:
    """``train_feature_net``, trained once per judge set and CPU thread count and then read back (safetensors under
    ``outputs/cache/extractor``): every notebook of a series scores with the same weights, bit for bit what its own
    training gave (the thread count is in the key: it changes the last bits of the weights)."""
    import hashlib

    import safetensors.torch

    from . import paths

    h = hashlib.sha256(np.stack([it.image for it in items]).tobytes() + repr([it.label for it in items]).encode())
    key = paths.config_hash({"version": 1, "judge": h.hexdigest(), "epochs": epochs, "seed": seed,
                             "threads": torch.get_num_threads()})
    path = paths.cache_dir("extractor") / f"feature_net_{key}.safetensors"
    with paths.locked(path):
        state = paths.read_cached(path, safetensors.torch.load_file, "training the feature net again")
        if state is None:
            net = train_feature_net(items, epochs, seed)
            paths.atomic_write_bytes(path, safetensors.torch.save(net.state_dict()))
            return net
    net = FeatureNet(state["head.weight"].shape[0])
    net.load_state_dict(state)
    return net.eval()


def fid_kid(feats_real: np.ndarray, feats_fake: np.ndarray) -> dict:
    """FID and KID between two feature sets, computed by clean-fid's own functions."""
    from cleanfid import fid as cfid

    n = min(len(feats_real), len(feats_fake))
    np.random.seed(0)                                                    # clean-fid's KID subsets use np.random
    kid = cfid.kernel_distance(feats_real, feats_fake, num_subsets=100, max_subset_size=min(1000, n))
    return {"fid": float(cfid.fid_from_feats(feats_real, feats_fake)), "kid": float(kid)}


def summarize(per_split: dict) -> dict:
    """Mean and standard error over splits of every numeric metric: ``{split: {name: value}}`` -> mean, sem, n."""
    names = {k for m in per_split.values() for k, v in m.items() if isinstance(v, (int, float)) or v is None}
    out = {"mean": {}, "sem": {}, "n_splits": len(per_split)}
    for k in sorted(names):
        vals = [m[k] for m in per_split.values() if isinstance(m.get(k), (int, float))]
        if len(vals) < len(per_split) or not vals:                       # "not measurable" somewhere
            out["mean"][k] = out["sem"][k] = None
            continue
        out["mean"][k] = float(np.mean(vals))
        out["sem"][k] = float(np.std(vals, ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else None
    return out


MEMBERSHIP = ("asr", "auc", "auc_dev", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")
PAPER_ATTACK = labels.PAPER_ATTACK


class QualityExtractor:
    """Features for FID/KID plus, for digits, the digit classifier. ``score`` compares generated with real images."""

    def __init__(self, features, description: str, classifier=None):
        self.features, self.description, self.classifier = features, description, classifier

    def score(self, real_items, images, labels=None) -> dict:
        out = fid_kid(self.features(np.stack([it.image for it in real_items])), self.features(np.asarray(images)))
        if self.classifier is not None and labels is not None and None not in labels:
            out["digit_accuracy"] = digit_accuracy(self.classifier, images, labels)
        return out


def quality_extractor(splits, cfg, items) -> QualityExtractor:
    """The FID/KID features of ``quality_features``: ``"auto"`` is the offline digit CNN (trained on the judge set
    of ``items``, ``sets.judge``) for a ``tiny`` base and clean-fid's Inception otherwise; ``"inception"`` forces Inception; ``"pixels"`` is
    raw pixels average-pooled to 8x8, an offline stand-in for running the paper path without Inception's weights
    (tests), not an image-quality measure."""
    choice = cfg.model.quality_features
    if choice == "pixels":
        return QualityExtractor(PooledPixels(), PooledPixels.DESCRIPTION)
    if choice == "auto" and cfg.model.base == "tiny":
        known = judge(items, splits)
        if any(it.label is None for it in known):                       # a folder of images: no classes to learn
            return QualityExtractor(PixelPCA(np.stack([it.image for it in known])), LABEL_FREE_FEATURES)
        net = cached_feature_net(known)
        scale = 1.0 / net.features(np.stack([it.image for it in known])).std()   # unit-scale features
        return QualityExtractor(_Scaled(net, scale), TINY_FEATURES, digit_classifier(known))
    return QualityExtractor(_inception_features(), "clean-fid Inception-v3 pool features (2048-d), clean resize")


class PooledPixels:
    """Images (N, H, W, 3) uint8 -> average-pooled 8x8x3 pixels in [0, 1] (N, 192): no weights, no download."""
    DESCRIPTION = "raw pixels pooled to 8x8 (offline stand-in, not an image-quality measure; not Inception)"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0      # (N, 3, H, W)
        return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1).double().numpy()


class PixelPCA:
    """Label-free tiny features: ``PooledPixels`` projected on their first ``n`` principal components, fitted on
    ``images`` (the judge set) and scaled to unit spread there. Deterministic (full SVD), learned without labels and
    never on a member or a non-member; 10 components, as the digit CNN's 10 logits, keep FID's covariance
    estimable from about a hundred generated images."""

    def __init__(self, images: np.ndarray, n: int = 10):
        from sklearn.decomposition import PCA

        pooled = PooledPixels()(images)
        self.pca = PCA(n_components=min(n, len(pooled), pooled.shape[1]), svd_solver="full").fit(pooled)
        self.scale = 1.0 / self.pca.transform(pooled).std()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.pca.transform(PooledPixels()(images)) * self.scale


class _Scaled:
    """``net.features(images) * scale`` as a picklable callable (audits can run in worker processes)."""

    def __init__(self, net, scale: float):
        self.net, self.scale = net, scale

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.net.features(images) * self.scale


def _inception_features():
    import torch
    from cleanfid.features import build_feature_extractor
    from cleanfid.resize import make_resizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_feature_extractor("clean", device)                     # downloads the weights once
    resize = make_resizer("PIL", False, "bicubic", (299, 299))

    def features(images: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(images), 64):
            batch = np.stack([resize(im) for im in images[i:i + 64]])   # (B, 299, 299, 3) float 0..255
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(device)
            with torch.no_grad():
                out.append(model(x).cpu().numpy())
        return np.concatenate(out)

    return features


def method_summary(audits: dict, quality: dict) -> dict:
    """Per-split and mean +- s.e. results of one method: every attack, quality, and the headline ``mean``/``sem``
    (the paper's attack plus FID/KID), in the vocabulary of all notebooks. ``audits`` = ``{split: {attack:
    record}}``; the records' per-image scores stay out (``metrics.json`` keeps the numbers, not the scores)."""
    splits = list(audits)
    per_split = {s: {**{a: {k: v for k, v in audits[s][a].items() if "scores_" not in k} for a in audits[s]},
                     "quality": quality[s]} for s in splits}
    attacks = {a: summarize({s: audits[s][a] for s in splits}) for a in audits[splits[0]]}
    qual = summarize(quality)
    return {"per_split": per_split, "attacks": attacks, "quality": qual,
            "mean": {**{k: attacks[PAPER_ATTACK]["mean"][k] for k in MEMBERSHIP}, **qual["mean"]},
            "sem": {**{k: attacks[PAPER_ATTACK]["sem"][k] for k in MEMBERSHIP}, **qual["sem"]}}


def accuracy_by_domain(clf, images, labels, private_classes) -> dict:
    """The digit accuracy of generated ``images`` overall and, with ``private_classes`` (a set of labels), apart
    for the captions of the public classes (the base model's domain) and of the private ones (new to it)."""
    labels = np.asarray(labels)
    out = {"digit_accuracy_base_samples": digit_accuracy(clf, images, labels)}
    if private_classes:
        private = np.isin(labels, sorted(private_classes))
        images = np.asarray(images)
        for name, mask in (("public", ~private), ("private", private)):
            if mask.any():
                out[f"digit_accuracy_base_{name}_classes"] = digit_accuracy(clf, images[mask], labels[mask])
                out[f"n_base_{name}_classes"] = int(mask.sum())
    return out
