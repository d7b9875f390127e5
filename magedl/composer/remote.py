"""Reading a Composer repository over HTTP: the one metadata fetch, and what a refusal means.

:func:`metadata_fetcher` is the ``fetch(url)`` every
:class:`~magedl.composer.repository.ComposerRepository` reads through (``keys check``, ``doctor``,
``mirror``). Rule: no key is ever part of a message, only the masked public key and where it was found.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Union

import requests
import urllib3

from magedl.config import shown_url
from magedl.errors import AuthError, EntitlementError, FeedError, MagedlError
from magedl.ranges import Validators
from magedl.safejson import parse_json
from magedl.secrecy import redact
from magedl.text import printable

log = logging.getLogger(__name__)

__all__ = ["KEYS_PAGE", "NOT_THEIRS", "KeyNote", "explain", "keys_label", "looked_in", "metadata_fetcher",
           "hashed_name", "not_entitled", "note_for_lookup", "read_changes", "refused", "server_warning", "where"]

KEYS_PAGE = "Commerce Marketplace > My Profile > Access Keys (https://commercemarketplace.adobe.com/customer/accessKeys/)"
NOT_THEIRS = ("the account behind the keys has no licence for it (Commerce packages need a Commerce licence; "
              "Marketplace extensions must be bought by this account), the entitlement lapsed (an unpaid "
              "invoice), or the keys were made by a user who is not the account's primary contact")
# A 401 body is a small JSON object; read no more of it than this.
_WARNING_LIMIT = 16 << 10
# Composer's providers-url names a file by its sha256 (``%hash%``; '$' travels as %24).
_HASHED = re.compile(r"(?:\$|%24)([0-9a-f]{64})\.json$")


@dataclass(frozen=True)
class KeyNote:
    """What magedl sends to one repository, for messages; never a key.

    Attributes
    ----------
    url : str
        The repository URL.
    found : bool
        Whether keys were found (and are sent).
    label : str
        ``"the keys (public key 1b2c…, from the global auth.json (/home/x/...))"`` when found,
        else where Composer looks and what was there.
    """

    url: str
    found: bool
    label: str


def where(lookup) -> str:
    """``the global auth.json (/home/x/.config/composer/auth.json)``: where the winning keys are."""
    label = lookup.source.label if lookup.source is not None else "nowhere"
    return f"{label} ({lookup.path})" if lookup.path else label


def keys_label(lookup) -> str:
    """How messages name the keys of a :class:`~magedl.composer.auth.KeyLookup` (masked public key, where)."""
    return f"the keys (public key {lookup.public_masked}, from {where(lookup)})"


def looked_in(lookup) -> str:
    """Every place Composer reads keys, as *lookup* searched them (``..., the global auth.json (PATH, absent)``)."""
    return ", ".join(f"{s.source.label}" + (f" ({s.path}{'' if s.present else ', absent'})" if s.path else "")
                     for s in lookup.searched)


def note_for_lookup(url: str, lookup) -> KeyNote:
    """The :class:`KeyNote` for the keys *lookup* found (or did not find) for *url*."""
    if lookup.found:
        return KeyNote(url, True, keys_label(lookup))
    return KeyNote(url, False, looked_in(lookup))


def _note(notes, url: str) -> Optional[KeyNote]:
    if isinstance(notes, KeyNote) or notes is None:
        return notes
    return next((n for u, n in notes.items() if url.startswith(u.rstrip("/"))), None)


def refused(what: str, note: Optional[KeyNote], warning: str = "") -> AuthError:
    """The :class:`AuthError` (exit 3) for a repository's 401: the server's warning, what was sent, what to do."""
    said = f" The server says: \"{warning}\"." if warning else ""
    if note is None or not note.found:
        looked = f" where Composer looks ({note.label})" if note is not None and note.label else ""
        return AuthError(f"{what}: the repository asks for Marketplace keys and magedl found no keys for it"
                         f"{looked} (HTTP 401).{said} Make a pair at {KEYS_PAGE}, then store it with "
                         "'magedl keys store --global' (or --project DIR)")
    return AuthError(f"{what}: {note.label} were refused (HTTP 401).{said} The pair is wrong, was disabled or "
                     f"deleted, or the private key was mistyped: compare both with {KEYS_PAGE}, and see what they "
                     "unlock with 'magedl keys check'; keys made on another account (a shared or agency account) "
                     "do not work for this one")


def not_entitled(what: str, status: int = 403) -> EntitlementError:
    """The :class:`EntitlementError` (exit 4) for an archive these keys may not fetch."""
    return EntitlementError(f"{what}: not entitled: this account may not download it (HTTP {status}): "
                            f"{NOT_THEIRS}")


def explain(error: MagedlError, note: Optional[KeyNote], what: str) -> MagedlError:
    """*error* from fetching something of a Composer repository, worded with what was sent and the next step."""
    if isinstance(error, AuthError):
        return refused(what, note)
    if isinstance(error, EntitlementError):
        return not_entitled(what)
    return error


def server_warning(response) -> str:
    """The ``warning`` (or ``message``) of a 401's JSON body, printable and short, or ``""``."""
    try:
        raw = response.raw.read(_WARNING_LIMIT + 1, decode_content=True) if response.raw else b""
        doc = json.loads(raw[:_WARNING_LIMIT].decode("utf-8", "replace"))
    except Exception:  # any body that is not the small JSON object repo.magento.com sends
        return ""
    text = doc.get("warning") or doc.get("message") if isinstance(doc, dict) else None
    return printable(redact(text))[:400] if isinstance(text, str) else ""


def hashed_name(url: str) -> Optional[str]:
    """The sha256 a providers-url file is named by (``p/NAME$HASH.json``), or None for a URL that names none."""
    hashed = _HASHED.search(url)
    return hashed.group(1) if hashed else None


def metadata_fetcher(client, notes: Union[None, KeyNote, Mapping[str, KeyNote]] = None, *,
                     limit: Optional[int] = None, cache=None) -> Callable[[str], bytes]:
    """``fetch(url) -> bytes`` for :class:`~magedl.composer.repository.ComposerRepository` through *client*.

    Parameters
    ----------
    client : magedl.service.api.Client
        Its session carries the credentials (each bound to its own host).
    notes : KeyNote or dict, optional
        What is sent: one note, or ``{repository URL: KeyNote}`` (the note of
        the repository a URL starts with), for the 401 explanation.
    limit : int, optional
        Largest body read; the client's metadata limit by default.
    cache : MetadataCache, optional
        Reuse files named by their sha256 without a request, revalidate the
        others, and skip what a changes feed says is unchanged (see
        :mod:`magedl.composer.cache`).
    """
    from magedl.service.api import read_capped
    from magedl.service.neterrors import transient_from

    limit = limit or client.metadata_limit

    def fetch(url: str) -> bytes:
        what = shown_url(url)
        hashed = _HASHED.search(url)
        if cache is not None:
            ready = cache.body(hashed.group(1)) if hashed else cache.trusted(url)
            if ready is not None:
                return ready
        held = cache.lookup(url) if cache is not None and not hashed else None

        def attempt():
            headers = {"Accept-Encoding": "gzip"}
            if held is not None:
                headers.update(held.conditional())
            response = client.open(url, what, headers=headers, allow=(401, 304))
            try:
                if response.status_code == 401:
                    raise refused(what, _note(notes, url), server_warning(response))
                if response.status_code == 304:
                    if held is None:
                        raise FeedError(f"{what}: the server answered 304 Not Modified to a plain request")
                    cache.confirm(url)
                    return held.body
                try:
                    data = read_capped(response, what, limit)
                except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    raise transient_from(exc, what, url) from None  # cut mid-body: retried
            finally:
                response.close()
            if cache is not None:
                if hashed:
                    cache.keep(data, hashed.group(1))
                else:
                    cache.remember(url, data, Validators.from_headers(response.headers))
            return data

        try:
            return client.retry.call(attempt, what)
        except EntitlementError as exc:  # a 403 on metadata: the account may not see it
            raise explain(exc, _note(notes, url), what) from None

    return fetch


def read_changes(client, url: str, since: Optional[int]) -> tuple:
    """Ask a Packagist-style ``metadata-changes-url`` what changed since *since*.

    Returns
    -------
    (timestamp, changed)
        ``timestamp`` to ask from next time (None when the answer has none);
        ``changed``: the package names updated or deleted since *since*
        (``~dev`` suffixes kept), or None when everything must be
        revalidated (no *since* yet, a ``resync``, or an answer that is not
        what Packagist sends).

    Raises
    ------
    MagedlError
        The feed cannot be read (the caller then revalidates everything).
    """
    from magedl.service.api import read_capped

    target = url if since is None else f"{url}{'&' if '?' in url else '?'}since={since}"
    what = shown_url(url)

    def attempt():
        response = client.open(target, what, headers={"Accept-Encoding": "gzip"}, allow=(400,))
        with response:
            return response.status_code, read_capped(response, what, 1 << 20)

    status, body = client.retry.call(attempt, what)
    doc = parse_json(body, what)
    stamp = doc.get("timestamp") if isinstance(doc, dict) else None
    stamp = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) and stamp > 0 else None
    actions = doc.get("actions") if isinstance(doc, dict) and status == 200 else None
    if not isinstance(actions, list) or any(not isinstance(a, dict) or a.get("type") not in ("update", "delete")
                                            or not isinstance(a.get("package"), str) for a in actions):
        return stamp, None
    return stamp, {a["package"].lower() for a in actions}
