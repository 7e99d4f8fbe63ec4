"""Tiny random-weight pipelines of every family in the registry: test and demo tooling only, never a real model.

Each builder writes a diffusers pipeline folder (a few hundred KB) with a tokenizer trained in memory, so nothing is
downloaded. `tiny_settings(family)` gives the generation settings (a `--config` mapping) that make it run in well
under a second on a CPU; `build_tiny_lora` writes a LoRA file for the families the registry loads with one.
"""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = (
    "frontal chest x-ray showing no acute cardiopulmonary process",
    "right lower lobe pneumonia with small pleural effusion",
    "cardiomegaly with mild pulmonary edema",
    "left sided pneumothorax, lungs otherwise clear",
    "support devices in place, atelectasis at the bases",
)
FAMILIES = ("sd", "sd3", "pixart_sigma", "sana", "lumina", "flux", "radedit")
LORA_FAMILIES = ("sd3", "lumina", "flux")
TINY_SIZE = 64
_TOKENS = 16  # tokenizer / text-encoder sequence length of the tiny models


def tiny_settings(family: str) -> dict:
    """Generation settings (the keys of a chexbench-generate config file) that fit the tiny model of `family`."""
    call_kwargs = {
        "sd3": {"max_sequence_length": _TOKENS},
        "flux": {"max_sequence_length": _TOKENS},
        "pixart_sigma": {"max_sequence_length": _TOKENS},
        "sana": {"max_sequence_length": _TOKENS, "complex_human_instruction": None},
        "lumina": {"max_sequence_length": 2 * _TOKENS, "system_prompt": ""},
    }.get(_check(family), {})
    return {"height": TINY_SIZE, "width": TINY_SIZE, "steps": 2, "dtype": "float32", "call_kwargs": call_kwargs}


def write_tiny_config(family: str, path: str | Path) -> Path:
    """Write tiny_settings(family) as a JSON config file for `chexbench-generate run --config`."""
    path = Path(path)
    path.write_text(json.dumps(tiny_settings(family), indent=2) + "\n")
    return path


def build_tiny_pipeline(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny random-weight pipeline of `family` and save it to `out_dir` (diffusers layout)."""
    import torch

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    _BUILDERS[_check(family)](out_dir)
    return out_dir


def build_tiny_lora(family: str, pipeline_dir: str | Path, out_file: str | Path, seed: int = 1) -> Path:
    """Write a random (non-zero) LoRA for the tiny `family` pipeline at `pipeline_dir` to the file `out_file`."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    if family not in LORA_FAMILIES:
        raise ValueError(f"no LoRA for family {family!r}; LoRA families: {', '.join(LORA_FAMILIES)}")
    pipe_cls = _pipeline_class(family)
    pipe = pipe_cls.from_pretrained(pipeline_dir)
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    pipe.transformer.add_adapter(config)
    out_file = Path(out_file)
    pipe_cls.save_lora_weights(
        out_file.parent,
        transformer_lora_layers=get_peft_model_state_dict(pipe.transformer),
        transformer_lora_adapter_metadata=config.to_dict(),
        weight_name=out_file.name,
    )
    return out_file


def _check(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; known: {', '.join(FAMILIES)}")
    return family


def _pipeline_class(family: str):
    import diffusers

    name = {"sd3": "StableDiffusion3Pipeline", "lumina": "Lumina2Pipeline", "flux": "FluxPipeline"}[family]
    return getattr(diffusers, name)


def _bpe_tokenizer(model_max_length: int = _TOKENS, add_eos: bool = False):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["<pad>", "<unk>", "<s>", "</s>"]
    # no progress: the trainer's bar is instant here and leaves blank lines in a batch log
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=200, special_tokens=special, show_progress=False))
    if add_eos:  # CLIP pools at the end-of-text token
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 3)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=model_max_length,
    )


def _wordpiece_tokenizer(model_max_length: int = _TOKENS):
    """A BERT-style tokenizer with an explicit vocabulary (WordPiece training is not reproducible across runs)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for s in CORPUS for w in s.lower().replace(",", " ").replace("-", " - ").split()})
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    wp = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=wp,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def _vae(n_blocks: int = 2, **kw):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8,) * n_blocks,
        down_block_types=("DownEncoderBlock2D",) * n_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_blocks,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=TINY_SIZE,
        **kw,
    )


def _clip(tok, with_projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=_TOKENS,
        projection_dim=16,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    return CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)


def _t5(tok, d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(tok),
            d_model=d_model,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            pad_token_id=0,
            eos_token_id=3,
            decoder_start_token_id=0,
        )
    )


def _unet(cross_attention_dim: int = 16):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=TINY_SIZE // 2,
        layers_per_block=1,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )


def _build_sd(out: Path) -> None:
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    tok = _bpe_tokenizer(add_eos=True)
    StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=_clip(tok),
        tokenizer=tok,
        unet=_unet(),
        scheduler=DDIMScheduler(clip_sample=False, steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(out)


def _build_sd3(out: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tok = _bpe_tokenizer(add_eos=True)
    transformer = SD3Transformer2DModel(
        sample_size=TINY_SIZE // 2,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        caption_projection_dim=16,
        pooled_projection_dim=32,
        pos_embed_max_size=32,
    )
    StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(shift_factor=0.0, scaling_factor=1.0),
        text_encoder=_clip(tok, True),
        tokenizer=tok,
        text_encoder_2=_clip(tok, True),
        tokenizer_2=tok,
        text_encoder_3=_t5(tok),
        tokenizer_3=tok,
    ).save_pretrained(out)


def _build_flux(out: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tok = _bpe_tokenizer(add_eos=True)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    )
    FluxPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        vae=_vae(shift_factor=0.0, scaling_factor=1.0),
        text_encoder=_clip(tok),
        tokenizer=tok,
        text_encoder_2=_t5(tok),
        tokenizer_2=tok,
    ).save_pretrained(out)


def _build_lumina(out: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, Lumina2Pipeline, Lumina2Transformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    tok = _bpe_tokenizer(model_max_length=4 * _TOKENS)
    text_encoder = Gemma2Model(
        Gemma2Config(
            vocab_size=len(tok),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
        )
    )
    transformer = Lumina2Transformer2DModel(
        sample_size=TINY_SIZE // 8,
        patch_size=2,
        in_channels=4,
        hidden_size=16,
        num_layers=1,
        num_refiner_layers=1,
        num_attention_heads=2,
        num_kv_heads=1,
        multiple_of=16,
        axes_dim_rope=(4, 2, 2),
        axes_lens=(256, 32, 32),
        cap_feat_dim=16,
    )
    # The pipeline hard-codes a VAE scale factor of 8, hence 4 VAE blocks.
    Lumina2Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        vae=_vae(n_blocks=4, shift_factor=0.0, scaling_factor=1.0),
        text_encoder=text_encoder,
        tokenizer=tok,
    ).save_pretrained(out)


def _build_pixart(out: Path) -> None:
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    tok = _bpe_tokenizer()
    transformer = PixArtTransformer2DModel(
        sample_size=TINY_SIZE // 2,
        num_layers=1,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=2,
        caption_channels=16,
        in_channels=4,
        out_channels=8,
        cross_attention_dim=16,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )
    PixArtSigmaPipeline(
        tokenizer=tok,
        text_encoder=_t5(tok, d_model=16),
        vae=_vae(),
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(),
    ).save_pretrained(out)


def _build_sana(out: Path) -> None:
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    tok = _bpe_tokenizer()
    text_encoder = Gemma2Model(
        Gemma2Config(
            vocab_size=len(tok),
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=4,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
        )
    )
    transformer = SanaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=8,
        sample_size=TINY_SIZE // 2,
    )
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)),
        decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1),
        decoder_layers_per_block=(1, 1),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )
    SanaPipeline(
        tokenizer=tok,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    ).save_pretrained(out)


def _build_radedit(out: Path) -> None:
    """RadEdit's layout: separate unet/, vae/ and text_encoder/ (a BERT encoder with its tokenizer) folders."""
    from transformers import BertConfig, BertModel

    out.mkdir(parents=True, exist_ok=True)
    _unet().save_pretrained(out / "unet")
    _vae().save_pretrained(out / "vae")
    tok = _wordpiece_tokenizer()
    BertModel(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=_TOKENS,
            pad_token_id=0,
        )
    ).save_pretrained(out / "text_encoder")
    tok.save_pretrained(out / "text_encoder")


_BUILDERS = {
    "sd": _build_sd,
    "sd3": _build_sd3,
    "pixart_sigma": _build_pixart,
    "sana": _build_sana,
    "lumina": _build_lumina,
    "flux": _build_flux,
    "radedit": _build_radedit,
}
