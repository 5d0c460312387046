"""Model manifests and their assembled, verified files (the manifests live in ``models/``)."""

from appliance.models.catalog import ModelCatalog, ModelStatus
from appliance.models.manifest import ModelFile, ModelManifest, load_manifest

__all__ = ["ModelCatalog", "ModelFile", "ModelManifest", "ModelStatus", "load_manifest"]
