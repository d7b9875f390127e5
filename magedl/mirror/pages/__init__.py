"""Browsable pages of a mirror: plain HTML written next to the data, so a browser shows what is inside.

``html`` holds the bricks (escaping, links, frame, stylesheet), ``releases``
and ``composer`` the two parts, ``site`` the front page and the whole set.
:func:`~magedl.mirror.pages.site.write_pages` is what a mirror run calls.
"""
