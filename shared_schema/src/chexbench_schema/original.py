"""The original CheXGenBench CSV layouts that chexbench keeps writing next to its own tables, so results can be
compared with the published ones (../shared/research/chexgenbench.md §11). Part of the contract: the fidelity stage
writes them per run, the report's leaderboard across runs."""

# Results/image_generation_metrics.csv (the conditional file adds `Pathology`)
ORIGINAL_LEADERBOARD_COLUMNS = (
    "FID",
    "FID (RadDino)",
    "Inception Score",
    "KID",
    "KID (RadDino)",
    "Precision",
    "Recall",
    "Density",
    "Coverage",
    "Extra Info",
    "Caption Type",
)
