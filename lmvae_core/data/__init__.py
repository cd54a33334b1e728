"""Datasets as device tensors and task streams built from them."""
from .datasets import DATASETS, DataMissingError, load_images
from .preprocess import binarize_dynamic, binarize_fixed, binarize_static, prepare, resize, to_rgb32, to_unit
from .streams import (DataConfig, Split, Task, TaskFreeStream, TaskStream, batch_indices, class_sorted_stream,
                      class_split_stream, data_config, domain_stream, load_split, permuted_stream, stream_from_tasks)

__all__ = ["DATASETS", "DataMissingError", "load_images", "binarize_dynamic", "binarize_fixed", "binarize_static",
           "prepare", "resize", "to_rgb32", "to_unit", "DataConfig", "Split", "Task", "TaskFreeStream", "TaskStream",
           "batch_indices", "class_sorted_stream", "class_split_stream", "data_config", "domain_stream", "load_split",
           "permuted_stream", "stream_from_tasks"]
