"""Blob storage backends of the registry server: the BlobStorage interface, local disk and S3."""

from .base import CHUNK_SIZE, BlobInfo, BlobStorage, Upload, iter_chunks
from .config import storage_from_config
from .errors import (
    BlobNotFound,
    InvalidKey,
    InvalidRange,
    KeyConflict,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
    UploadClosed,
)
from .keys import blob_key, validate_key
from .local import LocalStorage
from .s3 import S3Storage
from .sweep import sweep_unreferenced

__all__ = [
    "CHUNK_SIZE",
    "BlobInfo",
    "BlobNotFound",
    "BlobStorage",
    "InvalidKey",
    "InvalidRange",
    "KeyConflict",
    "LocalStorage",
    "S3Storage",
    "StorageConfigError",
    "StorageError",
    "StorageUnavailable",
    "Upload",
    "UploadClosed",
    "blob_key",
    "iter_chunks",
    "storage_from_config",
    "sweep_unreferenced",
    "validate_key",
]
