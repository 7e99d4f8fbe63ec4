"""Build a random-weight BioViL-T with hi-ml-multimodal 0.2.2's own classes and save it the way the published files
are laid out (runs in .venv-himl): <out>/biovil_t_image_model_proj_size_128.pt (ImageModel state_dict, temporal
pooler and classifier included) and <out>/text/ (CXRBertModel.save_pretrained + CXRBertTokenizer)."""

import sys
from pathlib import Path

import torch
from chexbench_align.tiny import calibrate_batchnorm, vocabulary
from health_multimodal.image.model.model import ImageModel
from health_multimodal.image.model.types import ImageEncoderType
from health_multimodal.text.model import CXRBertConfig, CXRBertModel, CXRBertTokenizer


def main(out: Path) -> None:
    torch.manual_seed(0)
    image = ImageModel(img_encoder_type=ImageEncoderType.RESNET50_MULTI_IMAGE, joint_feature_size=128)
    calibrate_batchnorm(image, seed=0)  # running statistics of real activations: images do not all embed alike
    out.mkdir(parents=True, exist_ok=True)
    torch.save(image.state_dict(), out / "biovil_t_image_model_proj_size_128.pt")

    text_dir = out / "text"
    text_dir.mkdir(exist_ok=True)
    vocab = vocabulary()
    (text_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = CXRBertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        projection_size=128,
    )
    CXRBertModel(config).save_pretrained(text_dir)
    CXRBertTokenizer(vocab_file=str(text_dir / "vocab.txt"), do_lower_case=True, model_max_length=64).save_pretrained(
        text_dir
    )
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
