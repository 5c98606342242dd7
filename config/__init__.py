"""Configuration: the one ``Settings`` object (:mod:`config.settings`), its parts in modules of their own, and the
documented example file."""
