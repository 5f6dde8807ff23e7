"""Configs: schema.py (Structs), store.py (load a folder into a Registry, seed), registry.py
(resolve, dependents), watch.py (hot reload), migrations/ (version steps). Modules are imported directly;
this package imports nothing so that importing one of them stays cheap and cycle-free.
"""
