"""The Composer part's defaults, where ``magedl mirror --help`` reads them without importing that part.

:mod:`magedl.mirror.composer.index` and :mod:`magedl.mirror.composer.select` re-export them; this module
imports nothing, so declaring the command costs no Composer code (``tests/cli/test_startup.py``).
"""

# Where clients reach DIR/composer/ when --composer-url is not given: what 'magedl serve DIR' answers at.
DEFAULT_URL = "http://127.0.0.1:8080/composer/"

MARKETPLACE = "https://repo.magento.com/"
PACKAGIST = "https://repo.packagist.org/"
DEFAULT_REPOS = (MARKETPLACE, PACKAGIST)  # the repositories asked, canonical first, when --composer-repo is not given
