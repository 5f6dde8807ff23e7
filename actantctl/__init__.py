"""``actantctl``: the thin command-line client of ``actantd``.

Only stdlib, click and the daemon's stdlib-only modules (``actantd.paths``, ``actantd.errors``) may be imported
from here on, so that a command costs one interpreter start-up plus one socket round trip.
"""
