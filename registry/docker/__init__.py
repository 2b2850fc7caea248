"""docker2aci: converting Docker and OCI images (archives, layouts, registries) into ACIs."""
