"""A procedural 4D world with exact ground truth, written in the SpatialVID-style layout the datagen reads.

Typical use: ``write_dataset("data/synth", num_clips=300, seed=0)``; see docs/synthetic.md.
"""

from .camera import MOVE_TAGS, CameraTrack, sample_camera
from .config import SynthConfig
from .counterfactual import clip_scene, counterfactual_scene, twin_rng
from .geometry import camera_axes, decode_pose, encode_pose, quaternion_to_matrix
from .groundtruth import (
    EgoMotion,
    ObjectMotion,
    camera_motion_tags,
    ego_motion,
    object_centers_camera,
    object_motion,
    object_speeds,
    speed_ratio,
)
from .objects import DIRECTIONS, SPEED_PROFILES, SceneObject, sample_objects
from .render import Frame, render_clip, render_frame
from .scene import Ground, Scene, sample_scene
from .writer import METADATA_COLUMNS, caption, clip_names, clip_paths, metadata_row, write_clip, write_dataset

__all__ = [
    "DIRECTIONS",
    "METADATA_COLUMNS",
    "MOVE_TAGS",
    "SPEED_PROFILES",
    "CameraTrack",
    "EgoMotion",
    "Frame",
    "Ground",
    "ObjectMotion",
    "Scene",
    "SceneObject",
    "SynthConfig",
    "camera_axes",
    "camera_motion_tags",
    "caption",
    "clip_names",
    "clip_paths",
    "clip_scene",
    "counterfactual_scene",
    "decode_pose",
    "ego_motion",
    "encode_pose",
    "metadata_row",
    "object_centers_camera",
    "object_motion",
    "object_speeds",
    "quaternion_to_matrix",
    "render_clip",
    "render_frame",
    "sample_camera",
    "sample_objects",
    "sample_scene",
    "speed_ratio",
    "twin_rng",
    "write_clip",
    "write_dataset",
]
