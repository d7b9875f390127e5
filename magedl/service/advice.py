"""What to tell a person when the server refuses them or the base URL leads nowhere.

Rule: a refusal is explained from what was sent and where each value came from, never with the secret
itself; the advice to generate a new token (which disables the old one on every build host) is given
only when the token is the likely cause.
"""

import difflib
import os
from urllib.parse import unquote, urlsplit

from magedl.config import DEFAULT_BASE_URL, SERVICE_HOST, Settings, is_service, shown_url
from magedl.secrecy import mageid_problem, mageid_shown
from magedl.text import printable

ACCOUNT_PAGE = "Account Settings > Downloads Access Token on magento.com"
#: A server that plays the downloads service (the emulator) says so in this header, so its refusals are
#: explained as the service's: the practice ground then gives the advice the real service would.
PLAYS_HEADER = "X-Magedl-Plays"
PLAYS_SERVICE = "downloads-service"


def plays_service(headers) -> bool:
    """True when a response's *headers* say the server plays the downloads service."""
    return (headers.get(PLAYS_HEADER) or "").strip() == PLAYS_SERVICE if headers is not None else False
TOKEN_HELP = (
    f"compare the token with {ACCOUNT_PAGE} (a token generated later replaces this one); generate a new one "
    "only if it is lost: that disables the old one on every build host"
)


def refused(settings: Settings, url: str, answer: str = "HTTP 401", service: bool = False) -> str:
    """Why *url* answered HTTP 401, and the next step, as one sentence or three.

    Parameters
    ----------
    settings : Settings
        What the client was set up with, and where each value came from.
    url : str
        The URL that answered 401 (after redirects).
    answer : str
        How the refusal came (``"HTTP 401"``, or a login page with status 200).
    service : bool
        The server said it plays the service (:func:`plays_service`); the real host always counts.
    """
    src, creds = settings.sources, settings.credentials
    host = urlsplit(url).hostname or ""
    base_host = urlsplit(settings.base_url).hostname or ""
    # Half-set credentials and a MAGEID's shape get their own sentence below; other notes are appended.
    notes = "".join(f" Also: {note}." for note in src.notes
                    if "was found" not in note and not note.startswith("the MAGEID "))
    if host != base_host:
        return (f"{host} asks for credentials ({answer}); it was reached by a redirect from {base_host}, and magedl "
                f"sends credentials only to the host they were given for.{notes}")
    service = service or is_service(settings.base_url)
    if creds is None:
        half = next((note for note in src.notes if "was found" in note), "")
        looked = (f"looked in --mageid/--token-file, MAGEDL_MAGEID/MAGEDL_TOKEN, the config file {src.config_file} "
                  f"and netrc: {src.netrc or 'not consulted'}")
        if half:
            return f"{host} asks for credentials ({answer}) and none were sent: {half}.{notes}"
        who = "your MAGEID and downloads token" if service else "the user name and password the server expects"
        return (f"{host} asks for credentials ({answer}) and none were sent ({looked}): give {who} with "
                f"--mageid ID --token-file PATH, MAGEDL_MAGEID/MAGEDL_TOKEN, the config file or a 'machine {host}' "
                f"netrc entry.{notes}")
    sent = (f"MAGEID {mageid_shown(creds.mageid)} (from {src.mageid or 'the caller'}) with the "
            f"{src.token_length or len(creds.token)}-character token from {src.token or 'the caller'}")
    if not service:
        return (f"the server at {host} refused {sent} ({answer}); for a magedl mirror, check them against the "
                f"user:password lines of its --auth-file (your Adobe token is not involved).{notes}")
    problem = mageid_problem(creds.mageid, creds.token)
    if problem:
        return (f"the service refused {sent} ({answer}): that MAGEID {problem}; fix it before touching the "
                f"token.{notes}")
    if notes:
        return f"the service refused {sent} ({answer}).{notes} If those are fine: {TOKEN_HELP}."
    return (f"the service refused {sent} ({answer}). If the MAGEID is right, the token is the likely cause: "
            f"{TOKEN_HELP}.")


def base_url_hint(base_url: str) -> str:
    """A hint for a base URL under which no catalogue was found, or ``""``.

    Recognises a missing ``file://`` folder, a folder that is not a mirror,
    an ``.../info/...`` URL pasted as the base, the bare service host and a
    typo in the service's path.
    """
    parts = urlsplit(base_url)
    if parts.scheme == "file":
        folder = unquote(parts.path).rstrip("/") or "/"
        if not os.path.isdir(folder):
            return f"the folder {printable(folder)} does not exist"
        return (f"{printable(folder)} is not a mirror (it has no info/json); give the folder that holds info/ and "
                f"file/, or make one with 'magedl mirror {printable(folder)}'")
    path = parts.path
    root = f"{parts.scheme}://{parts.netloc}"
    for marker in ("/info/", "/file/"):
        if marker in path:
            fixed = root + path[:path.index(marker) + 1]
            return f"the base URL must stop before {marker[1:]}: try --base-url {shown_url(fixed)}"
    if parts.hostname == SERVICE_HOST:
        expected = urlsplit(DEFAULT_BASE_URL).path
        if path == "/":
            return f"the API lives under {expected}: try --base-url {DEFAULT_BASE_URL} (or leave it out)"
        if difflib.SequenceMatcher(None, path, expected).ratio() > 0.6:
            return f"did you mean {DEFAULT_BASE_URL}? (or leave --base-url out)"
        return f"the service's base URL is {DEFAULT_BASE_URL}"
    return "for a mirror, give the URL of the folder that holds info/json and file/"
