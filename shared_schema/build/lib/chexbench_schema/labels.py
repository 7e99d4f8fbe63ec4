"""The 14 CheXpert labels, in the order of the LLaVA-Rad annotations and the classifier outputs."""

CHEXPERT_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)

LABEL_VALUES = (1, 0, -1)  # positive, negative, uncertain; missing (not mentioned) is null
