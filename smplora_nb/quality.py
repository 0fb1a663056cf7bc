"""Image quality: FID and KID between generated and real images (clean-fid underneath) and the digit classifier
(arXiv 2402.11989 companion).

SD-scale runs use clean-fid's Inception; the offline ``tiny`` profile cannot download it and uses a small CNN trained
here on the judge set (``sets.judge``: every image outside the four private sets, all ten digits, so it knows the
private classes; ``FeatureNet``): its numbers are *not comparable* to Inception FID. A digit classifier on the judge
set also reads the generated digits (``digit_accuracy``; chance = 0.1). A dataset without class labels (a
``folder:``) gets label-free features instead (``PixelPCA``: principal components of pooled pixels, fitted on the
judge set) and no classifier accuracy. ``quality_extractor`` chooses among them.
"""
from __future__ import annotations

import hashlib

import numpy as np
import safetensors.torch
import torch
from torch import nn

from . import paths
from .config import parse_classes
from .sets import judge

TINY_FEATURES = ("digit-CNN logits (10-d) trained on the judge set, the images outside the four private sets "
                 "(not Inception: not comparable to published FID)")
LABEL_FREE_FEATURES = ("the first 10 principal components of 8x8-pooled pixels, fitted on the judge set, the images "
                       "outside the four private sets; no class labels (not Inception: not comparable to published FID)")


def _gray_features(images) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32) / 255.0                    # (N, H, W, 3)
    return x.max(axis=-1).reshape(len(x), -1)                           # (N, H*W): stroke intensity, any colour


def digit_classifier(items):
    """Logistic regression on stroke intensity, fitted on ``items`` (the judge set: no member, no non-member)."""
    from sklearn.linear_model import LogisticRegression       # scikit-learn: heavy, only when a classifier is fitted

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
    from cleanfid import fid as cfid                          # clean-fid: heavy, only when FID is computed

    n = min(len(feats_real), len(feats_fake))
    np.random.seed(0)                                                    # clean-fid's KID subsets use np.random
    kid = cfid.kernel_distance(feats_real, feats_fake, num_subsets=100, max_subset_size=min(1000, n))
    return {"fid": float(cfid.fid_from_feats(feats_real, feats_fake)), "kid": float(kid)}


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
        x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0      # (N, 3, H, W)
        return torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1).double().numpy()


class PixelPCA:
    """Label-free tiny features: ``PooledPixels`` projected on their first ``n`` principal components, fitted on
    ``images`` (the judge set) and scaled to unit spread there. Deterministic (full SVD), learned without labels and
    never on a member or a non-member; 10 components, as the digit CNN's 10 logits, keep FID's covariance
    estimable from about a hundred generated images."""

    def __init__(self, images: np.ndarray, n: int = 10):
        from sklearn.decomposition import PCA                  # scikit-learn: heavy, only for label-free features

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
    from cleanfid.features import build_feature_extractor     # clean-fid: heavy, only for Inception features
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


def base_samples(items, splits, images, labels, private_classes: str = "") -> dict:
    """Notebook 01's check of the base model's samples: the digit classifier, fitted on the judge set of ``items``
    (no member, no non-member), on the real D_te images and on ``images`` generated from captions of class
    ``labels``, overall and per domain (``accuracy_by_domain``; ``private_classes`` as in the config). Empty when
    the images have no class labels (a folder of images)."""
    if not len(labels) or labels[0] is None:
        return {}
    clf = digit_classifier(judge(items, splits))
    real = splits["member_te"] + splits["nonmember_te"]
    return {"digit_accuracy_real": digit_accuracy(clf, [it.image for it in real], [it.label for it in real]),
            **accuracy_by_domain(clf, images, labels, parse_classes(private_classes))}
