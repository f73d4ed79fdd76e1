"""colabmodels tests (a package, so `tests.servers` is never shadowed by another `tests`)."""
