"""Top-down data pipeline: skeletons, dataset readers, crop transforms, augmentation, the
``TopDownDataset`` and its DataLoader. Heatmap codecs live in :mod:`stnet.codecs`."""
from .skeletons import (Skeleton, get_skeleton, list_skeletons, register_skeleton,  # noqa: I001
                        skeleton_from_coco)
from .config import AugmentConfig, CodecConfig, DataConfig, apply_overrides, config_from_dict
from .records import ImageReadError, PersonRecord, read_image
from .coco import load_coco_records
from .mpii import load_mpii_records
from .lsp import load_lsp_records, lsp_split_indices
from .transforms import (affine_points, box_to_center_scale, crop_to_image, fix_aspect_ratio,
                         flip_image, flip_keypoints, get_warp_matrix, image_to_crop, invert_affine,
                         warp_image)
from .augment import CropParams, color_jitter, half_body_region, sample_crop_params
from .dataset import TopDownDataset, align_multiscale_heatmaps, denormalize_image, normalize_batch, normalize_image
from .build import (build_dataloader, build_dataset, build_loader, build_skeleton,
                    default_data_root, load_records, preset_config)

__all__ = [
    "Skeleton", "get_skeleton", "list_skeletons", "register_skeleton", "skeleton_from_coco",
    "AugmentConfig", "CodecConfig", "DataConfig", "apply_overrides", "config_from_dict",
    "ImageReadError", "PersonRecord", "read_image",
    "load_coco_records", "load_mpii_records", "load_lsp_records", "lsp_split_indices",
    "affine_points", "box_to_center_scale", "crop_to_image", "fix_aspect_ratio", "flip_image",
    "flip_keypoints", "get_warp_matrix", "image_to_crop", "invert_affine", "warp_image",
    "CropParams", "color_jitter", "half_body_region", "sample_crop_params",
    "TopDownDataset", "align_multiscale_heatmaps", "denormalize_image", "normalize_batch", "normalize_image",
    "build_dataloader", "build_dataset", "build_loader", "build_skeleton", "default_data_root",
    "load_records", "preset_config",
]
