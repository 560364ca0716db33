"""Deployment: a YAML file names models and target devices; ``build`` writes what an app ships."""

from macecl.deploy.build import MANIFEST_NAME, build
from macecl.deploy.config import DeployConfig, ModelSpec, TargetDevice, load_config

__all__ = ["MANIFEST_NAME", "DeployConfig", "ModelSpec", "TargetDevice", "build", "load_config"]
