import pandas as pd
import pytest
from chexbench_schema import CHEXPERT_LABELS


@pytest.fixture
def prompts_frame() -> pd.DataFrame:
    """Three valid prompts rows (invented text)."""
    rows = []
    for i, text in enumerate(["small left pleural effusion", "no acute process", "mild cardiomegaly"]):
        row = {
            "split": "test",
            "prompt_id": f"p{i:016x}",
            "prompt": text,
            "patient_id": f"p1000000{i}",
            "study_id": f"s5000000{i}",
            "id": f"1000000{i}5000000{i}",
            "image_path": f"files/p10/img{i}.jpg",
            "view": "PA",
        }
        row.update({label: None for label in CHEXPERT_LABELS})
        row["Pleural Effusion"] = 1 if i == 0 else 0
        rows.append(row)
    return pd.DataFrame(rows)
