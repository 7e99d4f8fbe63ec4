"""Radiomics feature vectors of grey images, for the Fréchet Radiomics Distance (FRD).

`RadiomicsTransform().apply(grey)` plays the role of `preprocess.GreyTransform.apply`: it takes one
`chexbench_common.imageio.load_grey` image (float32 (H, W) in [0, 1]) and returns a float32 1-D vector, position i
being `feature_names()[i]`; it is picklable and builds its pyradiomics extractor lazily, once per process, so it can
run in DataLoader worker processes (the extraction is the expensive part: about a second per image and core).
Everything happens in memory (SimpleITK images; no temporary files). Features pyradiomics cannot define come back
as NaN; a flat image (a generator's black frame), which its intensity normalisation cannot handle, gives a vector
of NaN rather than an exception. `chexbench_fidelity.frd` drops such features and images.
`describe()` is the record to store with the vectors (and to put in a cache key).

The recipe is the FRD v1 / CheXGenBench 2-D one: images Original, LoG (σ = 2, 3, 4, 5 mm) and the four 2-D wavelet
bands (LL, LH, HL, HH); classes first-order, GLCM (22 features), GLRLM, GLSZM, NGTDM; a whole-image mask; pyradiomics
settings normalize (×100), BSpline resampling to 2 mm, binWidth 5, voxelArrayShift 300. Two deliberate differences:

* Every image is first resized to `side` × `side` (default 512, PIL on float32, antialiased, aspect not kept, as the
  generators were trained on squashed MIMIC images). The original fed native resolutions at 1 mm/pixel, so a
  2544×3056 real radiograph and a 512 px synthetic one were described at five-fold different scales and FRD
  measured resolution as much as realism. At 512 px and spacing 1 mm the 2 mm resampling gives the 256 px grid the
  original used for 512 px generator outputs.
* The image is a true 2-D SimpleITK image, not a (1, H, W) volume: on a single-slice volume pyradiomics skips the LoG
  filter (any axis under 4 voxels), and on a 2-D image with force2D it takes a 1-D wavelet; 2-D without force2D
  gives the LoG images and the 2-D wavelet bands the recipe names (9 images × 77 features = 693).

Intensities are scaled by 255 (the 8-bit units the original read) but not rounded; with `normalize` the image is
z-scored (×100) anyway, so the scale only matters to the recorded settings. Diagnostics are not features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from PIL import Image

IMAGE_TYPES = {"Original": {}, "LoG": {"sigma": [2.0, 3.0, 4.0, 5.0]}, "Wavelet": {}}
GLCM = [
    "Autocorrelation",
    "JointAverage",
    "ClusterProminence",
    "ClusterShade",
    "ClusterTendency",
    "Contrast",
    "Correlation",
    "DifferenceAverage",
    "DifferenceEntropy",
    "DifferenceVariance",
    "JointEnergy",
    "JointEntropy",
    "Imc1",
    "Imc2",
    "Idm",
    "Idmn",
    "Id",
    "Idn",
    "InverseVariance",
    "MaximumProbability",
    "SumEntropy",
    "SumSquares",
]
FEATURE_CLASSES = {"firstorder": [], "glcm": GLCM, "glrlm": [], "glszm": [], "ngtdm": []}
SETTINGS = {
    "normalize": True,
    "normalizeScale": 100,
    "interpolator": "sitkBSpline",
    "resampledPixelSpacing": [2.0, 2.0],
    "padDistance": 10,
    "preCrop": True,
    "binWidth": 5,
    "voxelArrayShift": 300,
    "label": 1,
}
PACKAGES = ("pyradiomics-bhklab", "SimpleITK", "PyWavelets", "numpy", "Pillow")


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class RadiomicsTransform:
    """Grey [0, 1] image -> float32 radiomics vector; `side`: the square size every image is resized to first."""

    side: int = 512
    resample: int = Image.Resampling.BICUBIC
    sitk_threads: int = 1  # one per process: parallelism comes from worker processes
    _state: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.side < 32:
            raise ValueError(f"side {self.side} is too small for the 2 mm resampling and LoG σ = 5")

    def __getstate__(self):
        return {"side": self.side, "resample": self.resample, "sitk_threads": self.sitk_threads}

    def __setstate__(self, state):
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_state", {})

    def _extractor(self):
        """The pyradiomics extractor of this process (built on first use; not pickled)."""
        if "extractor" not in self._state:
            import radiomics
            import SimpleITK as sitk
            from radiomics import featureextractor

            radiomics.logger.setLevel(logging.ERROR)
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(self.sitk_threads)
            extractor = featureextractor.RadiomicsFeatureExtractor(**SETTINGS)
            extractor.disableAllImageTypes()
            extractor.enableImageTypes(**IMAGE_TYPES)
            extractor.disableAllFeatures()
            extractor.enableFeaturesByName(**FEATURE_CLASSES)
            self._state["extractor"] = extractor
        return self._state["extractor"]

    def resize(self, grey: np.ndarray) -> np.ndarray:
        """The float32 (side, side) image the features are computed on, in 8-bit units (×255, not rounded)."""
        image = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32))
        if image.size != (self.side, self.side):
            image = image.resize((self.side, self.side), resample=self.resample)
        return np.asarray(image, dtype=np.float32) * np.float32(255)

    def features(self, grey: np.ndarray) -> dict[str, float]:
        """Name -> value of every feature (pyradiomics order), diagnostics left out."""
        import SimpleITK as sitk

        if grey.ndim != 2:
            raise ValueError(f"expected a grey (H, W) image, got shape {grey.shape}")
        image = sitk.GetImageFromArray(self.resize(grey))  # spacing 1 mm, 2-D
        mask = sitk.GetImageFromArray(np.ones((self.side, self.side), np.uint8))
        mask.CopyInformation(image)
        output = self._extractor().execute(image, mask)
        return {k: float(v) for k, v in output.items() if not k.startswith("diagnostics_")}

    def apply(self, grey: np.ndarray) -> np.ndarray:
        """One grey [0, 1] image -> float32 (len(feature_names()),) vector; NaN where a feature is undefined."""
        if grey.ndim != 2:
            raise ValueError(f"expected a grey (H, W) image, got shape {grey.shape}")
        names = self.feature_names()
        if float(np.ptp(grey)) == 0.0:
            return np.full(len(names), np.nan, dtype=np.float32)
        values = self.features(grey)
        if list(values) != names:
            raise RuntimeError("pyradiomics returned features in a different order than feature_names()")
        return np.array([values[n] for n in names], dtype=np.float32)

    def feature_names(self) -> list[str]:
        """The names of the vector's positions, e.g. `wavelet-LH_glszm_ZoneEntropy` (cached per process)."""
        if "names" not in self._state:
            probe = np.random.default_rng(0).random((self.side, self.side), dtype=np.float32)
            self._state["names"] = list(self.features(probe))
        return self._state["names"]

    def describe(self) -> dict:
        """The recipe: image classes, feature classes, settings, resizing and library versions."""
        return {
            "input": "grey float32 in [0, 1] from chexbench_common.imageio.load_grey",
            "resize": f"squash to {self.side}x{self.side}, PIL {Image.Resampling(self.resample).name.lower()} on "
            "float32 (antialiased), then x255 (not rounded), spacing 1 mm, 2-D SimpleITK image",
            "mask": "whole image",
            "image_types": IMAGE_TYPES,
            "feature_classes": {k: v or "all" for k, v in FEATURE_CLASSES.items()},
            "settings": SETTINGS,
            "diagnostics": "excluded",
            "n_features": len(self.feature_names()),
            "versions": {p: _version(p) for p in PACKAGES},
        }
