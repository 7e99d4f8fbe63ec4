"""The command line's choices, free of torch, scikit-learn and pandas so that `chexbench-classify --help` starts in
a fraction of a second; settings.py and backbones.py build on these names."""

SETTINGS = ("all_original", "all_synthetic", "mixed", "augmented", "pretrain_synthetic", "duplicate_real")
BACKBONE_NAMES = ("resnet50", "densenet121", "xrv-densenet121")
# how a phase that trains on synthetic images only picks its checkpoint (it never sees a real validation label)
SYNTHETIC_SELECTIONS = ("held-out-synthetic", "last-epoch")
