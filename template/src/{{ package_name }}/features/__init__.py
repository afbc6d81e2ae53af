"""One folder per domain. Each folder with a router.py exposing `router` is mounted."""
