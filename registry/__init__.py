"""pyrkt: a self-hosted registry, client, launcher and builder for App Container (appc) images."""

__version__ = "0.1.0"
