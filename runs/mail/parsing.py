"""Parsing one RFC 5322 message into what a run needs: addresses, bodies, files.

Python's `email` package (with `policy.default`) is lenient: it turns almost any
bytes into a message and records what it had to guess as *defects*. Intake must not
start a run on a message it cannot read fully, so the defects that mean lost data (a
multipart cut short, an attachment whose base64 is broken) and a message with no
sender or no recipient are refused here with a reason a person can act on.
"""

import hashlib
import mimetypes
import re
from dataclasses import dataclass, field
from email import errors as email_errors
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses

# Defects after which some of the message's content is missing or wrong.
FATAL_DEFECTS = (
    email_errors.StartBoundaryNotFoundDefect,
    email_errors.CloseBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect,
    email_errors.MissingHeaderBodySeparatorDefect,
    email_errors.InvalidBase64PaddingDefect,
    email_errors.InvalidBase64CharactersDefect,
    email_errors.InvalidBase64LengthDefect,
)
RECIPIENT_HEADERS = ("to", "cc", "delivered-to", "x-original-to")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Bounds read from the raw bytes, before any parse (see `bounds_problem`).
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_ADDRESS_LINES = re.compile(
    rb"^(?:from|to|cc|bcc|reply-to|sender|delivered-to|x-original-to|"
    rb"resent-to|resent-cc|resent-from)[ \t]*:.*(?:\r?\n[ \t].*)*",
    re.IGNORECASE | re.MULTILINE,
)
_BOUNDARY = re.compile(
    rb"""boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))""", re.IGNORECASE
)


class UnparseableMessage(ValueError):
    """The bytes are not a message intake can read fully; the text says why."""


@dataclass
class Attachment:
    name: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class ParsedMessage:
    message_id: str
    sender: str
    sender_name: str
    to: list[str]
    cc: list[str]
    recipients: list[str]
    subject: str
    date: str | None
    text: str
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    size: int = 0

    def payload(self) -> dict:
        """The work item payload of the run this message starts."""
        return {
            "from": self.sender,
            "from_name": self.sender_name,
            "to": self.to,
            "cc": self.cc,
            "subject": self.subject,
            "date": self.date,
            "message_id": self.message_id,
            "text": self.text,
            "html": self.html,
            "attachments": [
                {"name": a.name, "content_type": a.content_type, "size": a.size}
                for a in self.attachments
            ],
        }


@dataclass
class Envelope:
    """What can be read of a message even when it cannot be parsed fully: enough
    to log and count a rejection."""

    message_id: str = ""
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    subject: str = ""


def _clean_text(value) -> str:
    """Text a database can store: no NUL (PostgreSQL's jsonb refuses it) and no lone
    surrogate (no UTF-8 column takes one).

    `email` keeps bytes that are not valid in their charset as surrogate escapes
    (`\\udcff` for 0xFF): those are read back as UTF-8 where they are UTF-8, and
    anything left becomes U+FFFD, as a mail reader would show it.
    """
    text = str(value or "").replace("\x00", "")
    if _SURROGATE.search(text):
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # a surrogate that is no escaped byte
            pass
        text = _SURROGATE.sub("\ufffd", text)
    return text


def bounds_problem(
    raw: bytes, *, max_header_bytes: int, max_addresses: int, max_parts: int
) -> str:
    """Why `raw` is over a bound, or "" (the cheap checks before the full parse).

    Python's `email` parser is linear but slow per address and per part (25k
    addresses: seconds and hundreds of MB), so these are counted on the bytes: the
    header section's size; the `@`s in address headers (an upper bound of the
    addresses); the lines opening a part of any declared boundary (the parts of
    every multipart, nested ones included).
    """
    end = _HEADER_END.search(raw)
    header = raw[: end.start()] if end else raw
    if len(header) > max_header_bytes:
        return (
            f"the header is {len(header)} bytes, over the limit of "
            f"{max_header_bytes} (RUNS_EMAIL_MAX_HEADER_BYTES)"
        )
    addresses = sum(line.count(b"@") for line in _ADDRESS_LINES.findall(header))
    if addresses > max_addresses:
        return (
            f"the message has {addresses} addresses, over the limit of "
            f"{max_addresses} (RUNS_EMAIL_MAX_ADDRESSES)"
        )
    boundaries = {a or b for a, b in _BOUNDARY.findall(raw)}
    if boundaries:
        opening = re.compile(
            rb"^--(?:" + b"|".join(re.escape(b) for b in boundaries) + rb")[ \t]*\r?$",
            re.MULTILINE,
        )
        parts = len(opening.findall(raw))
        if parts > max_parts:
            return (
                f"the message has {parts} MIME parts, over the limit of "
                f"{max_parts} (RUNS_EMAIL_MAX_PARTS)"
            )
    return ""


def _synthetic_message_id(raw: bytes) -> str:
    return f"<sha256-{hashlib.sha256(raw).hexdigest()[:40]}@runs.invalid>"


def _addresses(msg, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of every `name` header, lower-cased address."""
    pairs = []
    for value in msg.get_all(name, []):
        found = getattr(value, "addresses", None)
        if found is not None:
            pairs += [(a.display_name, a.addr_spec) for a in found]
        else:
            pairs += getaddresses([str(value)])
    return [
        (_clean_text(display), _clean_text(address).strip().lower())
        for display, address in pairs
        if "@" in address
    ]


def _header(msg, name: str) -> str:
    try:
        value = msg.get(name)
    except (IndexError, ValueError, TypeError, email_errors.HeaderParseError):
        return ""
    return _clean_text(value).strip() if value is not None else ""


def _addresses_or_none(msg, name: str) -> list[str]:
    try:
        return [a for _, a in _addresses(msg, name)]
    except Exception:  # noqa: BLE001 - too broken to read: logged without it
        return []


def envelope_read(raw: bytes, *, max_bytes: int | None = None) -> Envelope:
    """Best-effort headers of a message that will be rejected (never raises).

    With `max_bytes` (a message over a bound), only that much of it is read and
    its recipient headers are not: they may be what is over the bound.
    """
    try:
        head = raw if max_bytes is None else raw[:max_bytes]
        msg = BytesHeaderParser(policy=policy.default).parsebytes(head)
    except Exception:  # noqa: BLE001 - unreadable: logged without headers
        return Envelope()
    senders = _addresses_or_none(msg, "from")
    recipients = (
        set()
        if max_bytes is not None
        else {a for name in RECIPIENT_HEADERS for a in _addresses_or_none(msg, name)}
    )
    return Envelope(
        message_id=_header(msg, "message-id")[:500],
        sender=senders[0][:254] if senders else "",
        recipients=sorted(recipients),
        subject=_header(msg, "subject")[:500],
    )


def _text_of(part) -> str:
    try:
        return _clean_text(part.get_content())
    except (LookupError, UnicodeError, AssertionError):
        # unknown or lying charset: keep what can be read
        data = part.get_payload(decode=True) or b""
        return _clean_text(data.decode("utf-8", errors="replace"))


def _leaves(part):
    if part.get_content_maintype() == "multipart":
        for sub in part.iter_parts():
            yield from _leaves(sub)
    else:
        yield part


def _safe_name(name: str, index: int, content_type: str) -> str:
    name = _CONTROL.sub("", _clean_text(name)).replace("\\", "/")
    name = name.rsplit("/", 1)[-1].strip()
    name = name.lstrip(".")
    if not name:
        ext = mimetypes.guess_extension(content_type) or ".bin"
        name = f"attachment-{index}{ext}"
    if len(name) > 150:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:140] + dot + ext[:9]) if dot and len(ext) < 10 else name[:150]
    return name


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem} ({n}).{ext}" if dot and stem else f"{name} ({n})"
    taken.add(candidate.lower())
    return candidate


def _attachments(msg, bodies) -> list[Attachment]:
    found, taken = [], set()
    for leaf in _leaves(msg):
        if any(leaf is body for body in bodies):
            continue
        content_type = leaf.get_content_type()
        if leaf.get_content_maintype() == "message":
            inner = leaf.get_payload(0) if leaf.is_multipart() else leaf.get_payload()
            data = inner.as_bytes() if hasattr(inner, "as_bytes") else bytes(inner)
            default = "message.eml"
        else:
            data = leaf.get_payload(decode=True) or b""
            default = ""
        name = _safe_name(leaf.get_filename() or default, len(found) + 1, content_type)
        found.append(
            Attachment(name=_unique(name, taken), content_type=content_type, data=data)
        )
    return found


def _refuse_damaged(msg) -> None:
    defects = [d for part in msg.walk() for d in part.defects]
    fatal = sorted({type(d).__name__ for d in defects if isinstance(d, FATAL_DEFECTS)})
    if fatal:
        raise UnparseableMessage(
            "the message is damaged or truncated: " + ", ".join(fatal)
        )


def message_parse(raw: bytes, *, envelope_recipients=()) -> ParsedMessage:
    """Parse `raw` (the bytes of one message); raise UnparseableMessage."""
    if not raw or not raw.strip():
        raise UnparseableMessage("the message is empty")
    try:
        msg: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)
        _refuse_damaged(msg)
        senders = _addresses(msg, "from")
        if not senders:
            raise UnparseableMessage("the message has no From address")
        to = [a for _, a in _addresses(msg, "to")]
        cc = [a for _, a in _addresses(msg, "cc")]
        recipients = set(to) | set(cc)
        for name in ("delivered-to", "x-original-to"):
            recipients |= {a for _, a in _addresses(msg, name)}
        recipients |= {r.strip().lower() for r in envelope_recipients if "@" in r}
        if not recipients:
            raise UnparseableMessage("the message has no recipient address")
        date = None
        date_header = msg.get("date")
        if date_header is not None and getattr(date_header, "datetime", None):
            date = date_header.datetime.isoformat()
        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
        bodies = [p for p in (text_part, html_part) if p is not None]
        text = _text_of(text_part) if text_part is not None else ""
        html = _text_of(html_part) if html_part is not None else ""
        attachments = _attachments(msg, bodies)
        # Decoding registers the defects of the content (bad base64): look again.
        _refuse_damaged(msg)
        return ParsedMessage(
            message_id=_header(msg, "message-id")[:500] or _synthetic_message_id(raw),
            sender=senders[0][1][:254],
            sender_name=senders[0][0],
            to=to,
            cc=cc,
            recipients=sorted(recipients),
            subject=_header(msg, "subject"),
            date=date,
            text=text,
            html=html,
            attachments=attachments,
            size=len(raw),
        )
    except UnparseableMessage:
        raise
    except Exception as exc:
        raise UnparseableMessage(
            f"the message cannot be parsed: {type(exc).__name__}: {exc}"
        ) from exc
