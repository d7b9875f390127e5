"""Read a Composer repository, whatever its layout (inline, providers, metadata-url).

Rule: repository data is untrusted; every read is bounded in size and nesting, includes in depth and
number, a name is checked before a URL is built from it, and a wrong-typed entry is skipped with a
warning. The layouts and the ``fetch(url)`` the reader takes: see docs/design.md, "Notes: Composer
repositories".
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from magedl.composer.budget import PREFETCH_BUDGET, ByteBudget
from magedl.composer.includes import IncludeWalker, wire
from magedl.composer.metadata import check_package_name, collect_entries, containers_of
from magedl.errors import FeedError, IntegrityError, MagedlError, NotFoundError, UnsafeNameError, UsageError
from magedl.safejson import DEFAULT_MAX_BYTES, parse_json, read_bounded
from magedl.secrecy import redact

log = logging.getLogger(__name__)

__all__ = ["LAYOUTS", "ComposerRepository"]

LAYOUTS = ("inline", "providers", "metadata-url")
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ORIGIN = re.compile(r"^[^:]+://[^/]*")


class ComposerRepository:
    """One Composer repository, read lazily through ``fetch``.

    Parameters
    ----------
    url : str
        The repository URL as a user gives it to Composer (``https://repo.magento.com/``),
        or the URL of its ``.json`` root file.
    fetch : callable
        ``fetch(url) -> bytes | Iterable[bytes]``; raises magedl errors.
    max_bytes : int
        Bound on every metadata file read; a bigger body raises FeedError.
    warn : callable, optional
        Receives one line per skipped, malformed entry; logs a warning when omitted.

    Notes
    -----
    Results are cached per instance, and the instance is not thread-safe:
    give each thread its own, or guard calls with a lock. Only
    :meth:`prefetch` uses threads, for the fetches alone.
    """

    def __init__(self, url: str, fetch: Callable[[str], bytes | Iterable[bytes]], *,
                 max_bytes: int = DEFAULT_MAX_BYTES, warn: Callable[[str], None] | None = None):
        if not isinstance(url, str) or not _ABSOLUTE.match(url):
            raise UsageError(f"{redact(url)}: a Composer repository URL needs a scheme "
                             f"(https://...)")
        self.url = url
        self._fetch = fetch
        self.max_bytes = max_bytes
        self._warn = warn or log.warning
        # As Composer: a URL naming a .json file is the root file itself.
        path = re.sub(r"[?#].*$", "", url.split("://", 1)[1])
        self.packages_url = url if ".json" in path else url.rstrip("/") + "/packages.json"
        self.base_url = re.sub(r"(?:/[^/\\]+\.json)?(?:[?#].*)?$", "", url).rstrip("/")
        self._origin = _ORIGIN.match(url).group(0)
        self._root: dict | None = None
        self._layout = "inline"
        self._inline: dict[str, list] | MagedlError | None = None
        self._listing: dict[str, str] | None = None
        self._groups: dict[str, int] = {}
        self._cache: dict = {}  # (name, dev) -> entries, and the name lists
        self._ready: dict[str, bytes] = {}  # wire URL -> body fetched ahead by prefetch()
        self._ready_lock = threading.Lock()
        self.budget = ByteBudget(PREFETCH_BUDGET)  # bodies fetched ahead, unparsed; a run may share one

    def __repr__(self):
        return f"ComposerRepository({redact(self.url)!r})"

    # -- root and layout -------------------------------------------------

    def root(self) -> dict:
        """Return ``packages.json``, fetched on first use only."""
        if self._root is None:
            root = self._load(self.packages_url)
            self._layout = self._detect(root)
            self._root = root
        return self._root

    @property
    def layout(self) -> str:
        """``'inline'``, ``'providers'`` or ``'metadata-url'``."""
        self.root()
        return self._layout

    def _detect(self, root: dict) -> str:
        meta = root.get("metadata-url")
        if isinstance(meta, str) and meta:
            return "metadata-url"
        if meta not in (None, ""):
            self._warn(f"{self._where()}: metadata-url is not a string; ignored")
        providers = root.get("providers-url")
        if isinstance(providers, str) and providers and (
                "provider-includes" in root or "providers" in root):
            return "providers"
        if providers not in (None, "") and not isinstance(providers, str):
            self._warn(f"{self._where()}: providers-url is not a string; ignored")
        return "inline"

    def resolve(self, ref: str) -> str:
        """Turn a URL found in the metadata into an absolute one.

        Absolute URLs are kept; root-relative ones (``/p2/...``) resolve
        against the repository's scheme and host, dropping its path, as
        Composer does; other relative ones against the repository's base URL
        (Composer does that for include files only and would fail on the
        rest, so this is the lenient reading).
        """
        if _ABSOLUTE.match(ref):
            return ref
        if ref.startswith("/"):
            return self._origin + ref
        return f"{self.base_url}/{ref}"

    # -- names -----------------------------------------------------------

    def package_names(self) -> list[str]:
        """Return every package name the repository lists, lowercased, in listing order.

        A ``metadata-url`` repository without ``available-packages`` does not
        list its packages; only inline ones are returned then, with a warning.
        """
        names = list(self._inline_map())
        if self.layout == "metadata-url":
            available = self._available()
            if available is None:
                self._warn(f"{self._where()}: no available-packages list; "
                           f"the repository's package names are unknown")
            else:
                names += available
        elif self.layout == "providers":
            names += list(self._provider_listing())
        return list(dict.fromkeys(names))

    def offered_names(self, pattern: str = "*") -> list[str]:
        """The names offered (lowercased): :meth:`package_names`, or where there is no such list (packagist),
        its ``list`` API asked for *pattern* (``?filter=``, as Composer asks). Callers match and validate them.
        """
        if self.layout == "metadata-url" and self._available() is None and isinstance(self.root().get("list"), str):
            return list(dict.fromkeys(list(self._inline_map()) + self._listed_by_api(pattern)))
        return self.package_names()

    def _listed_by_api(self, pattern: str) -> list[str]:
        from urllib.parse import quote

        url = self.resolve(self.root()["list"])
        url += ("&" if "?" in url else "?") + "filter=" + quote(pattern, safe="*/")
        doc = self._load(url)
        names = doc.get("packageNames")
        if not isinstance(names, list):
            raise FeedError(f"{redact(url)}: no packageNames list in the answer")
        return [n.lower() for n in names if isinstance(n, str)]

    def provider_groups(self) -> dict[str, int]:
        """Return provider group label -> number of packages it lists.

        Labels come from the include file name (:func:`~magedl.composer.metadata.provider_label`):
        ``p/provider-ce$%hash%.json`` counts under ``"Open Source"``.  Empty
        unless the layout is ``providers``.
        """
        if self.layout != "providers":
            return {}
        self._provider_listing()
        return dict(self._groups)

    def _available(self) -> list[str] | None:
        """The ``available-packages`` names, lowercased; None when there is no usable list."""
        if "available" not in self._cache:
            available = self.root().get("available-packages")
            if available is not None and not isinstance(available, list):
                self._warn(f"{self._where()}: available-packages is not a list; ignored")
            names = ([n.lower() for n in available if isinstance(n, str)]
                     if isinstance(available, list) else None)
            self._cache["available"], self._cache["known"] = names, set(names or ())
        return self._cache["available"]

    def lists(self, name: str) -> bool | None:
        """Whether the repository lists *name*; None when it cannot tell without asking for its file.

        Reads ``packages.json`` (and the provider listing) on first use.
        """
        key = name.lower()
        if key in self._inline_map():
            return True
        if self.layout == "metadata-url":
            return None if self._available() is None else key in self._cache["known"]
        if self.layout == "providers":
            return key in self._provider_listing()
        return False

    def prefetch(self, names: Iterable[str], jobs: int = 8) -> None:
        """Fetch, *jobs* at a time, the files :meth:`versions` (``dev=False``) will read for *names*.

        Only packages the repository may list are asked for; the bodies are
        kept in memory until :meth:`versions` reads them (each once). A
        failure is not kept: that lookup fetches again and reports it.
        """
        try:
            urls = [url for name in dict.fromkeys(_valid_names(names))
                    if (name, False) not in self._cache and self.lists(name) is not False
                    for url in self._files_of(name)]
        except MagedlError:
            return  # packages.json or a listing cannot be read: the lookups report it
        with self._ready_lock:
            urls = [u for u in urls if u not in self._ready]
        if not urls:
            return

        def one(target):
            if not self.budget.has_room():
                return  # the budget is spent: this file is fetched when its lookup needs it
            try:
                data = read_bounded(self._fetch(target), self.max_bytes, redact(target))
            except MagedlError:
                return
            if self.budget.take(len(data)):  # over budget: dropped, fetched again (or revalidated) on lookup
                with self._ready_lock:
                    self._ready[target] = data

        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(urls)))) as pool:
            list(pool.map(one, urls))

    def _files_of(self, key: str) -> list[str]:
        """The wire URLs :meth:`versions` reads for a listed package *key* (``dev=False``)."""
        if key in self._inline_map():
            return []
        if self.layout == "metadata-url":
            return [wire(self.resolve(self.root()["metadata-url"].replace("%package%", key)))]
        sha = self._provider_listing().get(key) if self.layout == "providers" else None
        if sha is None:
            return []
        template = self.root()["providers-url"]
        return [wire(self.resolve(template.replace("%package%", key).replace("%hash%", sha)))]

    # -- versions --------------------------------------------------------

    def versions(self, name: str, *, dev: bool = True, shared: bool = False) -> list[dict]:
        """Return the version entries of one package, as Composer metadata dicts.

        Parameters
        ----------
        name : str
            The package name; matched lowercased.
        dev : bool
            Also read the ``~dev`` file of a ``metadata-url`` repository.
        shared : bool
            Return the entries this repository keeps, not a copy: for a caller that never
            changes them (a resolution holds a whole closure's entries once, not twice).

        Raises
        ------
        NotFoundError
            The repository has no usable version of the package.
        IntegrityError
            A providers file does not match the sha256 its listing gives.
        UnsafeNameError
            *name* is not a Composer package name (no URL is built from it).
        """
        key = check_package_name(name)
        if (key, dev) not in self._cache:
            entries = self._collect(self._inline_map().get(key, []), key, self._where())
            if not entries and self.layout == "metadata-url":
                entries = self._lazy_versions(key, dev)
            elif not entries and self.layout == "providers":
                entries = self._provider_versions(key)
            if not entries:
                raise NotFoundError(f"{name}: not in the Composer repository {redact(self.url)}")
            self._cache[key, dev] = entries
        return self._cache[key, dev] if shared else copy.deepcopy(self._cache[key, dev])

    def forget_versions(self, name: str | None = None) -> None:
        """Drop the version entries kept so far, of *name* or of every package: for a caller that keeps them
        its own way (a later call reads them again)."""
        keys = [k for k in self._cache if isinstance(k, tuple)] if name is None else \
            [(name.lower(), dev) for dev in (False, True)]
        for key in keys:
            self._cache.pop(key, None)

    def _collect(self, containers: list, key: str, where: str) -> list[dict]:
        return collect_entries(containers, key, where, self._warn)

    def _packages_of(self, doc: dict, key: str, url: str) -> list:
        return containers_of(doc, key, redact(url), self._warn)

    def _lazy_versions(self, key: str, dev: bool) -> list[dict]:
        available = self._available()
        if available is not None and key not in self._cache["known"]:
            return []  # the list is complete: no probing, as Composer
        template = self.root()["metadata-url"]
        entries: list[dict] = []
        for suffix in ("", "~dev") if dev else ("",):
            url = self.resolve(template.replace("%package%", key + suffix))
            try:
                doc = self._load(url)
            except NotFoundError:
                continue  # a missing file is "no versions" in a p2 repository
            entries += self._collect(self._packages_of(doc, key, url), key, redact(url))
        return entries

    def _provider_versions(self, key: str) -> list[dict]:
        sha = self._provider_listing().get(key)
        if sha is None:
            return []
        template = self.root()["providers-url"]
        url = self.resolve(template.replace("%package%", key).replace("%hash%", sha))
        doc = self._load(url, sha256=sha)
        return self._collect(self._packages_of(doc, key, url), key, redact(url))

    # -- listings --------------------------------------------------------

    def _inline_map(self) -> dict[str, list]:
        """Map name -> raw version containers from ``packages`` (and ``includes``)."""
        if isinstance(self._inline, MagedlError):
            raise self._inline  # a walk that failed is not walked again
        if self._inline is None:
            inline: dict[str, list] = {}
            walker = IncludeWalker(self.packages_url, self._load, self.resolve, self._warn)
            try:
                # Satis 'includes' only matter where nothing newer replaces them.
                walker.inline(self.root(), inline, self.packages_url, follow=self._layout == "inline")
            except FeedError as exc:
                self._inline = exc
                raise
            self._inline = inline
        return self._inline

    def _provider_listing(self) -> dict[str, str]:
        """Map name -> sha256 of its package file, reading every provider include."""
        if self._listing is None:
            listing: dict[str, str] = {}
            root = self.root()
            walker = IncludeWalker(self.packages_url, self._load, self.resolve, self._warn)
            walker.add_providers(root, listing, self.packages_url)
            groups: dict[str, int] = {}
            for label, count in walker.providers(root, listing, self.packages_url):
                groups[label] = groups.get(label, 0) + count
            self._groups = groups
            self._listing = listing
        return self._listing

    # -- reading ---------------------------------------------------------

    def _where(self) -> str:
        return redact(self.packages_url)

    def _load(self, url: str, *, sha256: str | None = None,
              sha1: str | None = None) -> dict:
        """Fetch, bound, verify and parse one metadata file into a JSON object."""
        target = wire(url)
        with self._ready_lock:
            data = self._ready.pop(target, None)
        if data is not None:
            self.budget.give(len(data))  # parsed below and dropped: the body is not kept
        else:
            data = read_bounded(self._fetch(target), self.max_bytes, redact(url))
        for algo, expected in (("sha256", sha256), ("sha1", sha1)):
            if expected:
                actual = hashlib.new(algo, data).hexdigest()
                if actual != expected.lower():
                    raise IntegrityError(f"{redact(url)}: {algo} mismatch: the listing says "
                                         f"{expected}, the file has {actual}")
        doc = parse_json(data, redact(url))
        if not isinstance(doc, dict):
            raise FeedError(f"{redact(url)}: expected a JSON object, got "
                            f"{type(doc).__name__}")
        return doc


def _valid_names(names: Iterable[str]):
    """The Composer package names among *names*, lower-cased; the others are refused where they are looked up."""
    for name in names:
        try:
            yield check_package_name(name)
        except UnsafeNameError:
            continue
