"""The command line's choices, free of torch, scikit-learn and pandas so that `chexbench-classify --help` starts in
a fraction of a second; settings.py and backbones.py build on these names."""

SETTINGS = ("all_original", "all_synthetic", "mixed", "augmented", "pretrain_synthetic", "duplicate_real")
BACKBONE_NAMES = ("resnet50", "densenet121", "xrv-densenet121")
