"""A skeleton third identity system, as a test fixture (not the product): what a new system needs to run on the
sandbox's runtimes. Its whole code is this folder; the product would register it with two lines in
`sandbox/systems/__init__.py` (its import and its place in the list)."""
