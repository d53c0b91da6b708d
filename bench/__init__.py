"""Benchmarks for Ladle; see bench/README.md. Importable so hypercorn can serve bench.floor_app."""
