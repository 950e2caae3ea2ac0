"""One home for phone-number rules: `rules` (patterns, types, defaults, limits; no
dependencies) and `format` (parsing, country and display with libphonenumber)."""
