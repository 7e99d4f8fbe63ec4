"""A tiny random LLaVA folder in the converted layout (tests and the `make bench` demo): a DINOv2 tower at 28 px with
14 px patches, an mlp2x_gelu projector, a two-layer Llama and a locally trained BPE tokenizer with `<image>` as the
last id. Random weights: what it writes says nothing about LLaVA-Rad; it exercises the same code paths."""

from __future__ import annotations

from pathlib import Path

from .processor import build_processor
from .prompting import IMAGE_TOKEN, INSTRUCTION, SYSTEM

IMAGE_SIZE, PATCH_SIZE = 28, 14
# Invented radiology sentences: the tokenizer learns their words as whole pieces; any other ASCII text still
# encodes (every printable character is in the alphabet), so no input maps to <unk>.
CORPUS = (
    "No acute cardiopulmonary process.",
    "The lungs are clear without focal consolidation, pleural effusion or pneumothorax.",
    "Small left pleural effusion with adjacent basilar atelectasis.",
    "Moderate cardiomegaly with mild pulmonary edema.",
    "Right lower lobe consolidation concerning for pneumonia.",
    "Small right apical pneumothorax.",
    "Enlarged cardiomediastinal silhouette.",
    "Healing fracture of the left sixth rib.",
    "Nodular opacity in the right upper lobe.",
    "Bilateral pleural effusions, larger on the right.",
    "Patchy bibasilar opacities, possibly atelectasis.",
    "Stable mild pleural thickening at the left apex.",
    "Endotracheal tube terminates above the carina.",
    "Left central venous catheter with tip in the superior vena cava.",
    "Multiple rounded nodular opacities in both mid and lower lungs.",
    "Heart size is normal. The mediastinal and hilar contours are unremarkable.",
    "There is no evidence of free air under the diaphragm. Osseous structures are intact.",
    "Interval improvement of the interstitial markings; no new opacity.",
)
SPECIAL = ("<unk>", "<s>", "</s>")


def build_tokenizer(vocab_size: int = 600):
    """A Llama-like fast tokenizer trained here on CORPUS: BPE, metaspace prefix '▁' on the first word, <unk>=0
    <s>=1 </s>=2, BOS added to every encoding, padding with <unk> as LLaVA's v1 does, `<image>` as the last id."""
    import string

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    core.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL),
        initial_alphabet=list(string.printable.strip() + "\n▁"),
        show_progress=False,  # it wrote blank lines into batch logs
    )
    core.train_from_iterator([SYSTEM, INSTRUCTION, "USER: ASSISTANT:", *CORPUS] * 4, trainer)
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])  # BOS as Llama
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<unk>",
        model_max_length=2048,
        padding_side="right",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tokenizer


def write_tiny_llava(folder: str | Path, seed: int = 0) -> Path:
    """Write model (safetensors), config, tokenizer and LlavaProcessor into `folder`; return it."""
    import torch
    from transformers import (
        Dinov2Config,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    folder = Path(folder)
    tokenizer = build_tokenizer()
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = LlavaConfig(
        vision_config=Dinov2Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            mlp_ratio=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_id=image_token_id,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    processor = build_processor(tokenizer, IMAGE_SIZE, PATCH_SIZE)  # convert's processor: LLaVA-Rad's preprocessing
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
