"""The pretrained captioner path: transformers' BLIP (`Salesforce/blip-image-captioning-base` in catalog.hub.toml).

BLIP's text decoder cross-attends to the vision transformer's patch tokens. Per generated token we take the
cross-attention of the query position that *predicts* that token (position t-1 for token t), average it over
the heads and over the layers, drop the [CLS] image token, renormalise it to sum to one and reshape it to the
patch grid (image_size / patch_size squared). Averaging over layers and heads is the simplest faithful summary
(attention rollout does not apply to cross-attention); the maps show where the decoder read, not a causal
attribution.

The folder holds what the Hub repo holds: config.json, model.safetensors (pickled weights refused), the
tokenizer files and preprocessor_config.json. Remote code is never trusted.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.base import require_safetensors
from models.captioner import Captioner, CaptionResult
from models.packed import pack_for_inference
from models.registry import TRANSFORMERS_FILES, register_family

log = logging.getLogger(__name__)


class BlipCaptioner(Captioner):
    def __init__(self, model, processor, name: str, revision: str | None = None, pack: bool = True):
        self.model = model.eval()
        # linear layers prepacked for oneDNN (`models.packed`): the decoder multiplies a few beams' rows by every
        # weight at each token, where the packed layout is 2x faster; same float32 products
        self.packed_layers = pack_for_inference(model, rows_hint=4) if pack else 0
        self.processor = processor
        self.name = name
        self.revision = revision
        vision = model.config.vision_config
        self.image_size = int(vision.image_size)
        self.grid = self.image_size // int(vision.patch_size)

    def square_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        return 0.0, 0.0, 1.0, 1.0  # BLIP's processor resizes the whole image to a square

    def token_attention(self, pixel_values: torch.Tensor, ids: torch.Tensor,
                        image_embeds: torch.Tensor | None = None) -> np.ndarray:
        """(T-1, grid, grid) maps for the tokens ids[1:] of one sequence (ids[0] is the decoder's start token).
        `image_embeds`, when the vision tower already ran on `pixel_values`, saves running it again."""
        if image_embeds is None:
            image_embeds = self.model.vision_model(pixel_values=pixel_values).last_hidden_state  # (1, 1+N, D)
        out = self.model.text_decoder(input_ids=ids[None], encoder_hidden_states=image_embeds, output_attentions=True,
                                      past_key_values=self._image_cache(image_embeds, 1), use_cache=True,
                                      return_dict=True)
        cross = torch.stack(out.cross_attentions)  # (layers, 1, heads, T, 1+N)
        maps = cross.mean(dim=(0, 2))[0, :-1, 1:]  # query t-1 predicts token t; [CLS] dropped: (T-1, N)
        maps = maps / maps.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return maps.view(-1, self.grid, self.grid).float().numpy()

    def _image_cache(self, image_embeds: torch.Tensor, beams: int):
        """The decoder's cache with its cross-attention part filled: each layer's keys and values of the one image,
        computed once and shared by the `beams` rows (expanded views), as the decoder would compute them from the
        image embeddings repeated once a beam. Beam search reorders rows that are all the same, so the cross part
        skips the reordering (`_image_keys_values`)."""
        from transformers import DynamicCache, EncoderDecoderCache

        if image_embeds.shape[0] != 1:
            raise ValueError("one image at a time")
        text_cfg = self.model.config.text_config
        cross = _image_keys_values()(config=text_cfg)
        for i, layer in enumerate(self.model.text_decoder.bert.encoder.layer):
            attn = layer.crossattention.self
            shape = (1, image_embeds.shape[1], -1, attn.attention_head_size)
            k = attn.key(image_embeds).view(shape).transpose(1, 2)  # (1, heads, 1+N, head size)
            v = attn.value(image_embeds).view(shape).transpose(1, 2)
            cross.update(k.expand(beams, -1, -1, -1), v.expand(beams, -1, -1, -1), i)
        return EncoderDecoderCache(DynamicCache(config=text_cfg), cross)

    def generate(self, image_embeds: torch.Tensor, beam_size: int, max_len: int):
        """`BlipForConditionalGeneration.generate` from the vision tower's output: its decoder call, argument for
        argument, so the vision tower (most of the cost at 384 px) runs once for the caption and its maps. The
        cross-attention keys and values of the image are computed once, not once a beam (`_image_cache`)."""
        text_cfg = self.model.config.text_config
        start = torch.full((image_embeds.shape[0], 1), text_cfg.bos_token_id, dtype=torch.long)  # (1, 1)
        return self.model.text_decoder.generate(
            input_ids=start, eos_token_id=text_cfg.sep_token_id, pad_token_id=text_cfg.pad_token_id,
            encoder_hidden_states=image_embeds, past_key_values=self._image_cache(image_embeds, beam_size),
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long),
            num_beams=beam_size, max_new_tokens=max_len, no_repeat_ngram_size=3, do_sample=False, output_scores=True,
            return_dict_in_generate=True)

    @torch.inference_mode()
    def caption(self, image: Image.Image, beam_size: int = 3, max_len: int = 30) -> CaptionResult:
        pixel_values = self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        image_embeds = self.model.vision_model(pixel_values=pixel_values).last_hidden_state  # (1, 1+N, D)
        generated = self.generate(image_embeds, beam_size, max_len)
        ids = generated.sequences[0]
        tokenizer = self.processor.tokenizer
        maps = self.token_attention(pixel_values, ids, image_embeds)
        keep = [i for i, t in enumerate(ids[1:].tolist()) if t not in tokenizer.all_special_ids]
        tokens = [tokenizer.convert_ids_to_tokens(int(ids[1 + i])) for i in keep]
        score = float(generated.sequences_scores[0]) if getattr(generated, "sequences_scores", None) is not None else float("nan")
        return CaptionResult(tokenizer.decode(ids, skip_special_tokens=True).strip(), tokens,
                             maps[keep].astype(np.float32), score)


@functools.cache
def _image_keys_values() -> type:
    """A `DynamicCache` for the cross-attention keys and values of one image, the same in every beam: reordering
    the beams is a no-op (transformers is imported lazily, by the loader)."""
    from transformers import DynamicCache

    class ImageKeysValues(DynamicCache):
        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            return None

    return ImageKeysValues


@register_family("blip", files=TRANSFORMERS_FILES,
                 imports=["transformers:BlipForConditionalGeneration", "transformers:BlipProcessor"])
def load_blip(folder: Path, name: str) -> BlipCaptioner:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    require_safetensors(folder, name)
    model = BlipForConditionalGeneration.from_pretrained(folder, use_safetensors=True, trust_remote_code=False,
                                                         dtype=torch.float32, attn_implementation="eager")
    processor = BlipProcessor.from_pretrained(folder, trust_remote_code=False)
    log.info("loaded BLIP captioner %s from %s", name, folder)
    return BlipCaptioner(model, processor, name)
