"""One versioned schema per table. Semver per table: a new optional column is a minor bump,
a rename, a type change or a change of meaning is a major bump; readers accept any minor of their major."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .labels import CHEXPERT_LABELS, LABEL_VALUES

# Column kinds and their Arrow types; "vector" is fixed_size_list<float32>[d] with d per file.
KINDS = ("string", "int8", "int32", "int64", "float64", "bool", "vector")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    description: str
    nullable: bool = False
    allowed: tuple | None = None
    relative_path: bool = False  # must be relative and stay inside its declared root
    pattern: str | None = None  # regular expression a non-null value must match in full

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}")


@dataclass(frozen=True)
class TableSpec:
    name: str
    version: str
    description: str
    columns: tuple[Column, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    required_metadata: tuple[str, ...] = ()
    metadata_doc: dict[str, str] = field(default_factory=dict)

    @property
    def a_table(self) -> str:
        """'a prompts table', 'an images table': the table's name with its article, for messages."""
        return f"{'an' if self.name[0] in 'aeiou' else 'a'} {self.name} table"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


SHA256 = r"[0-9a-f]{64}"


def prompt_id(text: str) -> str:
    """The contract's prompt id: 'p' + the first 16 hex digits of sha256 of the prompt text (UTF-8)."""
    return "p" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


PROMPTS = TableSpec(
    name="prompts",
    version="1.0.0",
    description="Text prompts with their real image and CheXpert labels; one row per unique prompt of a split.",
    columns=(
        Column("split", "string", "Split name, e.g. train, test, train20k."),
        Column(
            "prompt_id",
            "string",
            "Stable id: 'p' + first 16 hex of sha256 of the prompt text (+ '.<k>' for the k-th kept repeat).",
        ),
        Column("prompt", "string", "The text-to-image prompt (LLaVA-Rad findings, `annotated_prompt`)."),
        Column("patient_id", "string", "Patient id (MIMIC `patientID`, e.g. p10000032).", nullable=True),
        Column("study_id", "string", "Study id (e.g. s50414267), parsed from the image path.", nullable=True),
        Column("id", "string", "The original `id` column (subject + study digits; not unique).", nullable=True),
        Column(
            "image_path",
            "string",
            "Real image path relative to the MIMIC-CXR-JPG root (files/pXX/...).",
            nullable=True,
            relative_path=True,
        ),
        Column("view", "string", "View position (AP, PA, ...).", nullable=True),
        *(
            Column(
                label,
                "int8",
                f"CheXpert label {label}: 1 positive, 0 negative, -1 uncertain, null unmentioned.",
                nullable=True,
                allowed=LABEL_VALUES,
            )
            for label in CHEXPERT_LABELS
        ),
    ),
    unique=(("prompt_id",),),
    metadata_doc={
        "uncertainty_policy": "How -1 labels were mapped on conversion (u-zeros, u-ones, keep).",
        "caption_column": "Source column of the prompt text (e.g. annotated_prompt): the leaderboards' Caption Type.",
    },
)

IMAGES = TableSpec(
    name="images",
    version="1.0.0",
    description="Synthetic images, one row per image file, with how each was made.",
    columns=(
        Column("image_id", "string", "Unique image id: <prompt_id>-<sample_index>."),
        Column("prompt_id", "string", "The prompt this image was generated from (prompts.prompt_id)."),
        Column("model", "string", "Generator registry name or the imported model's name."),
        Column("path", "string", "Image file path relative to the declared images root.", relative_path=True),
        Column("seed", "int64", "Per-image seed derived from (global seed, prompt_id, sample index).", nullable=True),
        Column("sample_index", "int32", "Index of this image among the images of its prompt (0-based)."),
        Column("width", "int32", "Width in pixels."),
        Column("height", "int32", "Height in pixels."),
        Column("steps", "int32", "Denoising steps (null for imported images).", nullable=True),
        Column("guidance", "float64", "Classifier-free guidance scale (null for imported images).", nullable=True),
        Column("dtype", "string", "Compute dtype of the generator (null for imported images).", nullable=True),
        Column("sha256", "string", "sha256 of the image file.", pattern=SHA256),
    ),
    unique=(("image_id",), ("path",)),
    metadata_doc={"images_root": "Folder the `path` column is relative to, as given at write time."},
)

EMBEDDINGS = TableSpec(
    name="embeddings",
    version="1.1.0",
    description="One feature vector per image from one extractor.",
    columns=(
        Column("image_id", "string", "images.image_id (synthetic) or prompts.prompt_id (real)."),
        Column("source", "string", "real or synthetic.", allowed=("real", "synthetic")),
        Column("extractor", "string", "Extractor registry name (inception, raddino, dinov2, ...)."),
        Column("vector", "vector", "Feature vector, fixed_size_list<float32>[d]; finite unless `non_finite` allows."),
    ),
    unique=(("image_id",),),
    required_metadata=("extractor", "weights_sha256", "preprocessing"),
    metadata_doc={
        "extractor": "Extractor id, e.g. inception or raddino.",
        "weights_sha256": "sha256 of the weights file (or of the sorted file list of a model folder).",
        "preprocessing": "Resize, interpolation, normalisation applied before the network.",
        "non_finite": "`allowed`: vectors may hold NaN/inf where a feature is undefined for an image (radiomics); "
        "absent: every value must be finite. Readers that need finite vectors refuse such tables.",
    },
)

METRICS = TableSpec(
    name="metrics",
    version="1.0.0",
    description="Long-format metric values: one row per (run, stage, metric, subset, extractor).",
    columns=(
        Column("run_id", "string", "Run id (Results/<model>/<run_id>/)."),
        Column("model", "string", "Model evaluated."),
        Column("stage", "string", "Stage that computed the value (fidelity, align, privacy, ...)."),
        Column("metric", "string", "Metric name (FID, KID, IS, precision, ...)."),
        Column("subset", "string", "`all` or a CheXpert label name for conditional metrics."),
        Column("extractor", "string", "Feature extractor used, null where none applies.", nullable=True),
        Column("value", "float64", "The value; null when unavailable (see `note`).", nullable=True),
        Column("ci_low", "float64", "Lower bound of the confidence interval.", nullable=True),
        Column("ci_high", "float64", "Upper bound of the confidence interval.", nullable=True),
        Column("n_real", "int64", "Number of real samples used.", nullable=True),
        Column("n_synth", "int64", "Number of synthetic samples used.", nullable=True),
        Column("note", "string", "Flags such as `unstable: n < d` or why a value is unavailable.", nullable=True),
    ),
    unique=(("run_id", "stage", "metric", "subset", "extractor"),),
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (PROMPTS, IMAGES, EMBEDDINGS, METRICS)}


def get_table(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(TABLES))}") from None
