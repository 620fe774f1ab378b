"""Measurements of the runtime and its models (latency, export choices, sample quality).

A package so evaluation code and tests can `from benchmarks.classifier import load_classifier`
when the repository root is on sys.path; each module also runs as a script.
"""
