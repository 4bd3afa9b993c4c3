"""The CLI's names for the operator API's client, now in the top-level `apiclient` package.

Kept only while importers move to `apiclient`; it is deleted once none is left.
"""

from apiclient.access import TOKEN_ENV, TOKEN_FILE_ENV, api_base_url, login_name, read_token
from apiclient.access import cli_actor as actor
from apiclient.access import token_file as token_path
from apiclient.client import API_PREFIX, ApiClient
from apiclient.errors import (
    ApiError,
    ControlUnreachable,
    RequestRefused,
    TokenMissing,
    TokenRefused,
)
from apiclient.ingest import DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_LINES, ProgressHook
from apiclient.rows import FlowRow as FlowInfo
from apiclient.rows import IngestRejection, IngestResult, SqlResult

__all__ = [
    "API_PREFIX",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_CHUNK_LINES",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "ApiClient",
    "ApiError",
    "ControlUnreachable",
    "FlowInfo",
    "IngestRejection",
    "IngestResult",
    "ProgressHook",
    "RequestRefused",
    "SqlResult",
    "TokenMissing",
    "TokenRefused",
    "actor",
    "api_base_url",
    "login_name",
    "read_token",
    "token_path",
]
