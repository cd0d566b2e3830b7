"""Serving and storing work item files (e-mail attachments, robot uploads).

Files are never served from MEDIA_URL: only the permission-checked views (admin,
API) and the robots' signed URLs hand them out, through `file_response`, always as
a download. A stored file's type is what its sender said, so it is never trusted:
every file goes out as `application/octet-stream` with `nosniff`, and an `.html`
attachment can never render in the admin's origin.
"""

import hashlib
import secrets

from django.http import FileResponse

# no models imported here: runs.models takes `work_item_file_token` from this module


def work_item_file_token() -> str:
    """A new file's random token (WorkItemFile.token's default)."""
    return secrets.token_urlsafe(32)


def file_response(found) -> FileResponse:
    """`found` (a WorkItemFile) as an attachment the browser saves, never
    renders."""
    response = FileResponse(
        found.file.open("rb"),
        as_attachment=True,
        filename=found.name,
        content_type="application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    # a sandbox in case a browser renders it all the same
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def content_sha256(content) -> str:
    """Hex SHA-256 of bytes or of an uploaded file (read in chunks)."""
    if isinstance(content, bytes | bytearray):
        return hashlib.sha256(content).hexdigest()
    digest = hashlib.sha256()
    for chunk in content.chunks():
        digest.update(chunk)
    content.seek(0)
    return digest.hexdigest()
