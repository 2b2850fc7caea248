"""The ACI format: manifests and their validation, image IDs, streaming reading, reproducible writing, safe extraction."""
