"""Following a Composer repository's include files, bounded: Satis ``includes`` and Composer 1 ``provider-includes``.

Rule: every file is read at most once (by its URL), nesting stops at :data:`MAX_INCLUDE_DEPTH`, and a
repository naming more than :data:`MAX_INCLUDE_FILES` files is refused; a ``%hash%`` goes into a URL
only when it is a sha256. Why: see docs/security.md, "The hostile Composer repository".
"""

from __future__ import annotations

import re
from collections.abc import Callable

from magedl.composer.metadata import provider_label
from magedl.errors import FeedError
from magedl.secrecy import redact

__all__ = ["MAX_INCLUDE_DEPTH", "MAX_INCLUDE_FILES", "IncludeWalker", "wire"]

MAX_INCLUDE_DEPTH = 8
MAX_INCLUDE_FILES = 100
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def wire(url: str) -> str:
    """*url* as it is requested: Composer sends '$' as %24, which some proxies would mangle."""
    return url.replace("$", "%24") if url[:4].lower() == "http" else url


class IncludeWalker:
    """One walk over a repository's include files, from its root document at *root_url*.

    Parameters
    ----------
    load : callable
        ``load(url, sha256=None, sha1=None) -> dict``: fetch, check and parse one file.
    resolve : callable
        ``resolve(ref) -> url``: a URL found in the metadata made absolute.
    warn : callable
    """

    def __init__(self, root_url: str, load: Callable, resolve: Callable[[str], str], warn: Callable[[str], None]):
        self._load, self._resolve, self._warn = load, resolve, warn
        self.seen = {wire(root_url)}

    def visit(self, url: str, parent: str) -> bool:
        """Whether include *url* is still to be read (and mark it read); over the count, a FeedError."""
        if wire(url) in self.seen:
            return False
        if len(self.seen) > MAX_INCLUDE_FILES:
            raise FeedError(f"{redact(parent)}: the repository names more than {MAX_INCLUDE_FILES} include "
                            "files; refused (a loop, or a hostile repository): ask its maintainer")
        self.seen.add(wire(url))
        return True

    def inline(self, doc: dict, inline: dict, url: str, follow: bool, depth: int = 0) -> None:
        """Add *doc*'s ``packages`` (name -> [version containers]) to *inline*; then, if *follow*, its ``includes``."""
        packages = doc.get("packages")
        if isinstance(packages, dict):
            for pkg, versions in packages.items():
                if isinstance(versions, (dict, list)):
                    inline.setdefault(pkg.lower(), []).append(versions)
                else:
                    self._warn(f"{redact(url)}: versions of {pkg} are not an object; skipped")
        elif packages not in (None, []):
            self._warn(f"{redact(url)}: 'packages' is not an object; ignored")
        includes = doc.get("includes")
        if not follow or includes is None:
            return
        if not isinstance(includes, dict) or depth >= MAX_INCLUDE_DEPTH:
            self._warn(f"{redact(url)}: 'includes' unusable (not an object, or nested too deep)")
            return
        for include, meta in includes.items():
            sha1 = meta.get("sha1") if isinstance(meta, dict) else None
            if not include or (sha1 is not None and not isinstance(sha1, str)):
                self._warn(f"{redact(url)}: include {include!r} has no usable sha1; skipped")
                continue
            sub = self._resolve(include)
            if self.visit(sub, url):
                self.inline(self._load(sub, sha1=sha1), inline, sub, follow, depth + 1)

    def providers(self, doc: dict, listing: dict, url: str, depth: int = 0):
        """Yield (label, count) per provider include of *doc*, following nested ones, filling *listing*."""
        includes = doc.get("provider-includes")
        if includes is None:
            return
        if not isinstance(includes, dict) or depth >= MAX_INCLUDE_DEPTH:
            self._warn(f"{redact(url)}: provider-includes unusable (not an object, or nested too deep)")
            return
        for include, meta in includes.items():
            sha = meta.get("sha256") if isinstance(meta, dict) else None
            if not include or not isinstance(sha, str) or not SHA256.match(sha):
                self._warn(f"{redact(url)}: provider include {include!r} has no usable sha256; skipped")
                continue
            sub = self._resolve(include.replace("%hash%", sha))
            if not self.visit(sub, url):
                continue
            included = self._load(sub, sha256=sha)
            count = self.add_providers(included, listing, sub)
            count += sum(n for _, n in self.providers(included, listing, sub, depth + 1))
            yield provider_label(include), count

    def add_providers(self, doc: dict, listing: dict, url: str) -> int:
        """Add *doc*'s ``providers`` (name -> sha256 of its file) to *listing*; return how many."""
        providers = doc.get("providers")
        if providers is None:
            return 0
        if not isinstance(providers, dict):
            self._warn(f"{redact(url)}: 'providers' is not an object; ignored")
            return 0
        count = 0
        for pkg, meta in providers.items():
            sha = meta.get("sha256") if isinstance(meta, dict) else None
            if isinstance(sha, str) and SHA256.match(sha):
                listing[pkg.lower()] = sha
                count += 1
            else:
                self._warn(f"{redact(url)}: provider {pkg} has no usable sha256; skipped")
        return count
