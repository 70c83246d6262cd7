"""Fuzz targets shared by the quick hypothesis tests (tests/test_fuzz.py) and the long runner
(`python -m tests.fuzz`, docs/fuzzing.md).

A target takes one input (bytes) and either returns or raises `FuzzFailure`: an exception that is not one of
the errors the code under test documents, or state that outgrew its bound. Targets never catch broadly.
"""
