"""Show-attend-tell, beam search, caption metrics and the BLIP path."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image

from core.caption import caption, heat_on_image, token_heats
from core.inputs import InputError
from evaluation.captioning import box_chance, caption_metrics, corpus_bleu, find_phrase, has_repeated_phrase, peak_in_box
from models.beam_search import banned_tokens, beam_search
from models.captioner import (CaptionerConfig, CaptionResult, ShowAttendTell, Vocabulary,
                              caption_loss, detokenize, save_captioner, tokenize)
from models.registry import create_model

# ---------------------------------------------------------------- beam search


def _toy_step(table: torch.Tensor):
    """A toy decoder: log-probabilities depend on the step and the previous token; state = step counter (k, 1)."""

    def step(words, state):
        t = int(state[0, 0])
        return table[t][words], None, state + 1

    return step


def _exhaustive(table: torch.Tensor, sos: int, eos: int, max_len: int, length_penalty: float, forbidden=()):
    vocab = table.shape[-1]
    best, best_seq = -math.inf, None
    for n in range(1, max_len + 1):
        for seq in itertools.product([w for w in range(vocab) if w not in forbidden], repeat=n):
            if eos in seq[:-1]:
                continue
            prev, score = sos, 0.0
            for t, w in enumerate(seq):
                score += float(table[t][prev][w])
                prev = w
            ended = seq[-1] == eos
            if not ended and n < max_len:
                continue  # unfinished sequences only count when they hit max_len
            tokens = list(seq[:-1]) if ended else list(seq)
            norm = score / n ** length_penalty
            if norm > best:
                best, best_seq = norm, tokens
    return best_seq, best


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_equals_exhaustive_search(seed, length_penalty):
    g = torch.Generator().manual_seed(seed)
    vocab, max_len, sos, eos = 4, 4, 0, 1
    table = torch.log_softmax(torch.randn(max_len, vocab, vocab, generator=g) * 2, dim=-1)
    expected, score = _exhaustive(table, sos, eos, max_len, length_penalty, forbidden=(sos,))
    hyps = beam_search(_toy_step(table), torch.zeros(1, 1), sos=sos, eos=eos, beam_size=vocab ** max_len,
                       max_len=max_len, length_penalty=length_penalty, forbidden=(sos,))
    assert hyps[0].tokens == expected
    assert hyps[0].normalised == pytest.approx(score, abs=1e-5)


def test_beam_one_is_greedy():
    g = torch.Generator().manual_seed(7)
    vocab, max_len = 6, 8
    table = torch.log_softmax(torch.randn(max_len, vocab, vocab, generator=g), dim=-1)
    hyp = beam_search(_toy_step(table), torch.zeros(1, 1), sos=0, eos=1, beam_size=1, max_len=max_len, forbidden=(0,))[0]
    prev, greedy = 0, []
    for t in range(max_len):
        scores = table[t][prev].clone()
        scores[0] = -math.inf
        w = int(scores.argmax())
        if w == 1:
            break
        greedy.append(w)
        prev = w
    assert hyp.tokens == greedy


def test_wider_beams_never_score_worse_than_greedy():
    g = torch.Generator().manual_seed(3)
    table = torch.log_softmax(torch.randn(6, 5, 5, generator=g) * 3, dim=-1)
    scores = [beam_search(_toy_step(table), torch.zeros(1, 1), sos=0, eos=1, beam_size=b, max_len=6,
                          length_penalty=0.0, forbidden=(0,))[0].normalised for b in (1, 3, 5 ** 6)]
    assert scores[0] <= scores[2] + 1e-6 and scores[1] <= scores[2] + 1e-6


def test_no_repeat_ngram_guard():
    assert banned_tokens([5, 6, 7, 5, 6], 3) == {7}
    assert banned_tokens([5, 6, 7], 3) == set()
    assert banned_tokens([5, 5], 1) == {5}
    # a decoder that wants to say "a b c a b c ..." forever
    vocab = 5
    table = torch.full((12, vocab, vocab), -10.0)
    for t in range(12):
        table[t, 0, 2] = table[t, 2, 3] = table[t, 3, 4] = table[t, 4, 2] = -0.01
    hyp = beam_search(_toy_step(table), torch.zeros(1, 1), sos=0, eos=1, beam_size=3, max_len=12, no_repeat_ngram=3,
                      forbidden=(0,))[0]
    assert not has_repeated_phrase([str(t) for t in hyp.tokens], 3)


def test_beam_size_is_validated():
    with pytest.raises(ValueError):
        beam_search(_toy_step(torch.zeros(2, 3, 3)), torch.zeros(1, 1), sos=0, eos=1, beam_size=0, max_len=2)


# ---------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory):
    torch.manual_seed(0)
    vocab = Vocabulary.build(["a dog on a red background", "a cat at the top left"])
    cfg = CaptionerConfig(channels=[4, 8, 8, 8], embed_dim=8, hidden=16, attention_dim=8, max_len=12)
    folder = tmp_path_factory.mktemp("cap") / "tiny-captioner"
    save_captioner(ShowAttendTell(cfg, len(vocab)), vocab, folder)
    return folder


def test_vocabulary_round_trip():
    vocab = Vocabulary.build(["A dog, on red; a cat."])
    assert vocab.words[:4] == ["<pad>", "<sos>", "<eos>", "<unk>"]
    ids = vocab.encode("a dog, on red", max_len=10)
    assert ids[0] == vocab.sos and ids[-1] == vocab.eos
    assert detokenize(vocab.decode(ids)) == "a dog, on red"
    assert vocab.decode(vocab.encode("a zebra", 10)) == ["a", "<unk>"]
    assert tokenize("A teddy-bear, at the top.") == ["a", "teddy-bear", ",", "at", "the", "top", "."]


def test_teacher_forcing_shapes_and_attention_sums_to_one():
    torch.manual_seed(0)
    cfg = CaptionerConfig(channels=[4, 8, 8, 8], embed_dim=8, hidden=16, attention_dim=8)
    model = ShowAttendTell(cfg, 11)
    feats = model.encode(torch.randn(2, 3, 64, 64))
    assert feats.shape == (2, 64, 8)
    tokens = torch.randint(4, 11, (2, 7))
    logits, alphas, contexts = model(feats, tokens)
    assert logits.shape == (2, 6, 11) and alphas.shape == (2, 6, 64) and contexts.shape == (2, 6, 8)
    assert torch.allclose(alphas.sum(-1), torch.ones(2, 6), atol=1e-5)
    loss = caption_loss(logits, alphas, tokens[:, 1:], pad=0)
    loss.backward()
    assert torch.isfinite(loss) and model.encoder[0].weight.grad is not None


def test_doubly_stochastic_term_vanishes_for_evenly_spread_attention():
    logits = torch.zeros(1, 4, 5)
    targets = torch.tensor([[2, 3, 4, 0]])  # three words, one pad
    even = torch.full((1, 4, 6), 1 / 6)
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=0)
    assert caption_loss(logits, even, targets, pad=0) == pytest.approx(float(ce))
    peaked = torch.zeros(1, 4, 6)
    peaked[..., 0] = 1
    assert caption_loss(logits, peaked, targets, pad=0) > ce


def test_captioner_family_one_map_per_token(tiny_captioner):
    cap = create_model("show_attend_tell", tiny_captioner, "tiny")
    for beam in (1, 3):
        r = cap.caption(Image.new("RGB", (90, 60), (200, 30, 30)), beam_size=beam)
        assert isinstance(r.caption, str)
        assert r.attention.shape == (len(r.tokens), 8, 8)
        assert np.allclose(r.attention.reshape(len(r.tokens), -1).sum(1), 1, atol=1e-5)


def test_missing_captioner_files_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json is missing"):
        (tmp_path / "config.json").write_text("{}")
        create_model("show_attend_tell", tmp_path, "broken")


def test_heat_on_image_has_the_image_size_and_range(tiny_captioner):
    cap = create_model("show_attend_tell", tiny_captioner, "tiny")
    image = Image.new("RGB", (120, 45), (0, 90, 200))
    r = cap.caption(image, beam_size=2)
    heats = token_heats(cap, image, r)
    assert len(heats) == len(r.tokens)
    for h in heats:
        assert h.shape == (45, 120) and h.min() >= 0 and h.max() == pytest.approx(1)


def test_heat_on_image_places_the_peak_where_the_grid_peaks():
    att = np.zeros((4, 4), np.float32)
    att[0, 3] = 1  # top right cell of the square the model saw
    heat = heat_on_image(att, (100, 100), (0, 0, 1, 1))
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert x >= 75 and y < 25
    # a wide image is padded top and bottom: the square's top row lies above the image
    wide = heat_on_image(att, (100, 50), (0, 0.25, 1, 0.75))
    assert wide.shape == (50, 100)


def test_beam_size_out_of_range_is_a_visitor_error(tiny_captioner):
    cap = create_model("show_attend_tell", tiny_captioner, "tiny")
    for bad in (0, 11, 50, -1, 2.5, "many", None):
        with pytest.raises(InputError, match="beam size"):
            caption(cap, Image.new("RGB", (64, 64)), bad)


# ---------------------------------------------------------------- metrics


def test_bleu_matches_nltk():
    from nltk.translate.bleu_score import corpus_bleu as nltk_bleu

    rng = np.random.default_rng(0)
    words = "a dog cat on the red blue background at top left right small big".split()
    hyps, refs = [], []
    for _ in range(40):
        refs.append([list(rng.choice(words, size=rng.integers(5, 12))) for _ in range(5)])
        base = list(refs[-1][0])
        hyps.append([w if rng.random() < 0.7 else str(rng.choice(words)) for w in base[: rng.integers(4, len(base) + 1)]])
    ours = corpus_bleu(hyps, refs)
    for n in range(1, 5):
        weights = tuple([1 / n] * n)
        assert ours[f"BLEU-{n}"] == pytest.approx(100 * nltk_bleu(refs, hyps, weights=weights), abs=1e-6)


def test_bleu_of_a_reference_is_100():
    ref = tokenize("a dog at the top left on a red background")
    assert corpus_bleu([ref], [[ref, tokenize("a red picture")]])["BLEU-4"] == pytest.approx(100)


def test_object_naming_pointing_and_repeats():
    assert find_phrase(["a", "teddy", "bear", "on", "red"], ["teddy", "bear"]) == 2
    assert find_phrase(["a", "bear"], ["teddy", "bear"]) is None
    att = np.zeros((8, 8))
    att[1, 6] = 1  # peak in the top right
    assert peak_in_box(att, (0.6, 0.0, 1.0, 0.4)) and not peak_in_box(att, (0.0, 0.0, 0.4, 0.4))
    assert box_chance((0, 0, 0.5, 0.5), 8) == pytest.approx(0.25)
    assert has_repeated_phrase("a blue shirt and a blue shirt".split()) and not has_repeated_phrase("a dog and a cat".split())
    tokens = "a teddy bear at the top right".split()
    maps = np.zeros((len(tokens), 8, 8), np.float32)
    maps[:, 4, 4] = 1
    maps[2] = att  # "bear" looks at the top right
    result = CaptionResult(" ".join(tokens), tokens, maps, 0.0)
    m = caption_metrics([result, result], [["a teddy bear at the top right"]] * 2,
                        [[{"name": "teddy bear", "box": [0.6, 0.0, 1.0, 0.4]}], [{"name": "teddy bear", "box": [0.6, 0.0, 1.0, 0.4]}, {"name": "dog", "box": [0, 0, 0.3, 0.3]}]])
    assert m["objects_named"] == 50 and m["pointing"] == 100 and m["n_object_words"] == 2
    assert m["BLEU-4"] == pytest.approx(100) and m["repeated_phrase_rate"] == 0


# ---------------------------------------------------------------- BLIP on a tiny random config


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    folder = tmp_path_factory.mktemp("blip") / "tiny-blip"
    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "dog", "cat", "on", "red", "picture", "of"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    cfg = BlipConfig(
        text_config={"vocab_size": len(words), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "encoder_hidden_size": 16, "bos_token_id": 5, "pad_token_id": 0,
                     "sep_token_id": 3, "eos_token_id": 3, "max_position_embeddings": 32},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
    )
    BlipForConditionalGeneration(cfg).save_pretrained(folder, safe_serialization=True)
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]")
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_blip_one_normalised_map_per_token(tiny_blip):
    cap = create_model("blip", tiny_blip, "tiny-blip")
    r = cap.caption(Image.new("RGB", (50, 40), (200, 10, 10)), beam_size=2, max_len=6)
    assert r.tokens and r.attention.shape == (len(r.tokens), 4, 4)  # 32 px / 8 px patches
    assert np.allclose(r.attention.reshape(len(r.tokens), -1).sum(1), 1, atol=1e-5)
    assert (r.attention >= 0).all()
    assert r.caption.replace(" ", "") == "".join(t.removeprefix("##") for t in r.tokens)


def test_blip_cross_attention_map_is_the_documented_average(tiny_blip):
    cap = create_model("blip", tiny_blip, "tiny-blip")
    pixels = cap.processor(images=Image.new("RGB", (32, 32), (10, 200, 10)), return_tensors="pt")["pixel_values"]
    ids = torch.tensor([5, 6, 7, 9, 10])
    with torch.inference_mode():
        maps = cap.token_attention(pixels, ids)
        emb = cap.model.vision_model(pixel_values=pixels).last_hidden_state
        out = cap.model.text_decoder(input_ids=ids[None], encoder_hidden_states=emb, output_attentions=True, return_dict=True)
    manual = np.mean([layer[0].mean(0).numpy() for layer in out.cross_attentions], axis=0)[:-1, 1:]  # (T-1, N)
    manual /= manual.sum(1, keepdims=True)
    assert maps.shape == (4, 4, 4)
    assert np.allclose(maps.reshape(4, -1), manual, atol=1e-6)


def test_blip_refuses_pickled_weights(tiny_blip, tmp_path):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_blip, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="only safetensors"):
        create_model("blip", folder, "pickled")


@pytest.mark.parametrize("beam", [1, 3, 5])
def test_blip_caption_runs_the_vision_tower_once_and_matches_blip_generate(tiny_blip, beam):
    """The app's path (one vision pass, the image's cross-attention keys and values computed once for every beam,
    packed linear layers) against BLIP as transformers ships it: its own generate, and maps from a plain
    teacher-forced pass with a second vision pass, on a separately loaded, unpacked copy of the same weights."""
    from transformers import BlipForConditionalGeneration

    from models.blip_captioner import BlipCaptioner

    cap = create_model("blip", tiny_blip, "tiny-blip")
    assert cap.packed_layers > 0
    plain = BlipCaptioner(BlipForConditionalGeneration.from_pretrained(tiny_blip, attn_implementation="eager"),
                          cap.processor, "reference", pack=False)
    assert plain.packed_layers == 0
    for colour, size in (((200, 10, 10), (50, 40)), ((10, 10, 200), (32, 64)), ((90, 160, 30), (33, 33))):
        image = Image.new("RGB", size, colour)
        calls = []
        hook = cap.model.vision_model.register_forward_hook(lambda *a, calls=calls: calls.append(1))
        try:
            r = cap.caption(image, beam_size=beam, max_len=8)
        finally:
            hook.remove()
        assert len(calls) == 1
        pixels = plain.processor(images=image, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            ref = plain.model.generate(pixel_values=pixels, num_beams=beam, max_new_tokens=8, no_repeat_ngram_size=3,
                                       do_sample=False, output_scores=True, return_dict_in_generate=True)
            ids = ref.sequences[0]
            emb = plain.model.vision_model(pixel_values=pixels).last_hidden_state
            out = plain.model.text_decoder(input_ids=ids[None], encoder_hidden_states=emb, output_attentions=True,
                                           return_dict=True)
        maps = torch.stack(out.cross_attentions).mean(dim=(0, 2))[0, :-1, 1:]
        maps = (maps / maps.sum(-1, keepdim=True)).view(-1, 4, 4).numpy()
        tok = cap.processor.tokenizer
        assert r.caption == tok.decode(ids, skip_special_tokens=True).strip()
        keep = [i for i, t in enumerate(ids[1:].tolist()) if t not in tok.all_special_ids]
        np.testing.assert_allclose(r.attention, maps[keep], atol=1e-6)


def test_blip_packed_layers_fall_back_for_autograd_and_keep_the_state_dict(tiny_blip):
    from transformers import BlipForConditionalGeneration

    cap = create_model("blip", tiny_blip, "tiny-blip")
    plain = BlipForConditionalGeneration.from_pretrained(tiny_blip, attn_implementation="eager")
    assert set(cap.model.state_dict()) == set(plain.state_dict())
    pixels = torch.rand(1, 3, 32, 32, requires_grad=True)
    emb = cap.model.vision_model(pixel_values=pixels).last_hidden_state  # autograd on: the plain layers run
    (grad,) = torch.autograd.grad(emb.sum(), pixels)
    emb_ref = plain.vision_model(pixel_values=pixels).last_hidden_state
    (grad_ref,) = torch.autograd.grad(emb_ref.sum(), pixels)
    torch.testing.assert_close(grad, grad_ref)
