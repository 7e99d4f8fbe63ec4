"""Score (image file, prompt) pairs with hi-ml-multimodal 0.2.2's own end-to-end inference engine, as CheXGenBench
does: `ImageTextInferenceEngine(ImageInferenceEngine(ImageModel, create_chest_xray_transform_for_inference(512,
448)), TextInferenceEngine(CXRBertTokenizer, CXRBertModel)).get_similarity_score_from_raw_data(path, prompt)`, one
pair at a time (hi-ml's load_image, transform, special-token check and prompt handling included). Runs in .venv-himl.

    python himl_engine_scores.py MODEL_DIR PAIRS_CSV OUT_CSV

PAIRS_CSV has columns file, prompt; OUT_CSV is it with a `score` column added. The smallest and largest pairwise
cosine of the distinct images' embeddings go to OUT_CSV with suffix .json: a model that embeds every image alike
would prove nothing about the image path.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from health_multimodal.image import ImageInferenceEngine
from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference
from health_multimodal.image.model.model import ImageModel
from health_multimodal.image.model.types import ImageEncoderType
from health_multimodal.text import TextInferenceEngine
from health_multimodal.text.model import CXRBertModel, CXRBertTokenizer
from health_multimodal.vlp import ImageTextInferenceEngine

IMAGE_FILE = "biovil_t_image_model_proj_size_128.pt"


def engine(model_dir: Path) -> ImageTextInferenceEngine:
    image_model = ImageModel(
        img_encoder_type=ImageEncoderType.RESNET50_MULTI_IMAGE,
        joint_feature_size=128,
        pretrained_model_path=model_dir / IMAGE_FILE,
    )
    transform = create_chest_xray_transform_for_inference(resize=512, center_crop_size=448)
    text_dir = str(model_dir / "text")
    text = TextInferenceEngine(CXRBertTokenizer.from_pretrained(text_dir), CXRBertModel.from_pretrained(text_dir))
    both = ImageTextInferenceEngine(ImageInferenceEngine(image_model, transform), text)
    both.text_inference_engine.model.eval()
    return both


def main(model_dir: Path, pairs_csv: Path, out_csv: Path) -> int:
    pairs = pd.read_csv(pairs_csv)
    scorer = engine(model_dir)
    score = scorer.get_similarity_score_from_raw_data
    pairs["score"] = [score(Path(f), p) for f, p in zip(pairs["file"], pairs["prompt"], strict=True)]
    pairs.to_csv(out_csv, index=False)
    files = list(dict.fromkeys(pairs["file"]))
    vectors = torch.stack([scorer.image_inference_engine.get_projected_global_embedding(Path(f)) for f in files])
    cosines = (vectors @ vectors.T).numpy()[~np.eye(len(files), dtype=bool)]
    spread = {"image_cosine_min": float(cosines.min()), "image_cosine_max": float(cosines.max())}
    out_csv.with_suffix(".json").write_text(json.dumps(spread) + "\n")
    print(f"hi-ml engine: {len(pairs)} pairs; pairwise image cosines {cosines.min():.4f} to {cosines.max():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
