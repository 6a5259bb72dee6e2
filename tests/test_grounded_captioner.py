"""The grounded captioner names what its grid recognises, where it is, with one map per word, and nothing else."""
import numpy as np
import pytest
from PIL import Image

from demo_world.free_scenes import COLOURS
from evaluation.hallucination import Lexicon, chair, position_claims
from models.captioner import tokenize
from models.grounded_captioner import GroundedCaptioner, GroundedConfig, position_words


@pytest.mark.parametrize("centre,extent,words", [
    ((0.1, 0.1), 0.2, "at the top left"), ((0.9, 0.5), 0.2, "on the right"), ((0.5, 0.85), 0.2, "at the bottom"),
    ((0.5, 0.5), 0.3, "in the middle"), ((0.35, 0.5), 0.2, ""), ((0.5, 0.5), 0.8, "filling the picture"),
])
def test_position_words_only_where_clearly_true(centre, extent, words):
    assert position_words(centre, extent) == words


def _captioner(probs: np.ndarray, names: list[str], threshold=0.5) -> GroundedCaptioner:
    cap = GroundedCaptioner.__new__(GroundedCaptioner)
    cap.names, cap.cfg, cap.name, cap.revision, cap._imagenet = names, GroundedConfig(threshold=threshold), "g", None, None
    cap._imagenet_lock = __import__("threading").Lock()
    cap.cell_probs = lambda image: probs
    cap.imagenet_guess = lambda image: (None, 0.0, np.full((6, 6), 1 / 36, np.float32))
    return cap


def test_caption_names_what_is_there_and_where_with_a_map_per_word():
    names = ["dog", "cat", "tree"]
    probs = np.zeros((6, 6, 4), np.float32)
    probs[..., 0] = 0.97  # background everywhere ...
    probs[0, 0] = [0.1, 0.9, 0.0, 0.0]  # ... but a dog in the top left cell
    probs[2:4, 4:6] = [0.2, 0.0, 0.8, 0.0]  # and a cat on the right
    probs[5, 5] = [0.6, 0.0, 0.0, 0.4]  # a tree below the threshold: not named
    image = Image.new("RGB", (192, 192), COLOURS["blue"])
    result = _captioner(probs, names).caption(image)
    assert result.caption == "a dog at the top left and a cat on the right on a blue background"
    assert result.attention.shape == (len(result.tokens), 6, 6)
    assert np.allclose(result.attention.sum(axis=(1, 2)), 1)
    dog = result.attention[result.tokens.index("dog")]
    assert np.unravel_index(dog.argmax(), dog.shape) == (0, 0)
    tokens, objects = tokenize(result.caption), [{"name": "dog", "box": [0, 0, .2, .2]}, {"name": "cat", "box": [.7, .35, .95, .6]}]
    lex = Lexicon({"dog": [], "cat": [], "tree": []})
    assert chair([tokens], [["dog", "cat"]], lex)["CHAIR_i"] == 0
    assert all(position_claims(tokens, objects, lex))


def test_nothing_recognised_means_no_invented_object():
    probs = np.zeros((6, 6, 3), np.float32)
    probs[..., 0] = 0.7
    probs[..., 1:] = 0.15
    result = _captioner(probs, ["dog", "cat"]).caption(Image.new("RGB", (64, 64), "white"))
    assert result.caption == "nothing from the demo world that i can name"
    assert not Lexicon({"dog": [], "cat": []}).mentions(result.tokens)
    assert np.allclose(result.attention.sum(axis=(1, 2)), 1)


def test_at_most_max_objects_most_confident_first():
    probs = np.zeros((6, 6, 7), np.float32)
    for k in range(6):
        probs[k, k] = 0
        probs[k, k, 1 + k] = 0.5 + 0.05 * k
        probs[k, k, 0] = 1 - probs[k, k, 1 + k]
    probs[..., 0] += (probs.sum(-1) == 0)
    found = _captioner(probs, list("abcdef")).detect(probs)
    assert [d.name for d in found] == ["f", "e", "d", "c"]
