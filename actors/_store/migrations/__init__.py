"""Versioned SQL migrations, applied in order by `actors._store._migrations`."""
