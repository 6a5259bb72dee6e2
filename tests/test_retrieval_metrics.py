import numpy as np

from evaluation.retrieval import recall_at_k


def _normalise(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _reference(text, image, owner, k):
    """Independent brute force: sort every row and look for the target."""
    t2i = np.mean([owner[q] in np.argsort(-(image @ text[q]))[:k] for q in range(len(text))]) * 100
    i2t = np.mean([np.isin(np.argsort(-(text @ image[i]))[:k], np.where(owner == i)[0]).any() for i in range(len(image))]) * 100
    return t2i, i2t


def test_recall_matches_brute_force_on_random_embeddings():
    rng = np.random.default_rng(0)
    image = _normalise(rng.normal(size=(60, 16)))
    owner = np.repeat(np.arange(60), 5)
    text = _normalise(image[owner] + rng.normal(scale=0.9, size=(300, 16)))
    got = recall_at_k(text, image, owner, ks=(1, 5, 10), chunk=37)
    for k in (1, 5, 10):
        t2i, i2t = _reference(text, image, owner, k)
        assert abs(got[f"t2i_R@{k}"] - t2i) < 1e-9 and abs(got[f"i2t_R@{k}"] - i2t) < 1e-9
    assert 0 < got["t2i_R@1"] < got["t2i_R@10"] < 100


def test_perfect_and_tied_embeddings():
    image = np.eye(4, dtype=np.float32)
    owner = np.arange(4)
    assert recall_at_k(image.copy(), image, owner)["t2i_R@1"] == 100.0
    tied = np.ones((4, 4), dtype=np.float32) / 2  # every image scores the same: ties count against us
    assert recall_at_k(tied, tied, owner)["t2i_R@1"] == 0.0
