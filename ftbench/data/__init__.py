"""Datasets for ftbench: logical names, bundled offline copies, local files, synthetic reviews.

Import is cheap: pandas / datasets load only when data is actually read.
"""

from ftbench.data.sources import (
    KNOWN_DATASETS,
    ClassificationData,
    DatasetInfo,
    load_classification,
)

__all__ = ["KNOWN_DATASETS", "ClassificationData", "DatasetInfo", "load_classification"]
