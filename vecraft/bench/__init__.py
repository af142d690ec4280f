"""Benchmarks run by ``vecraft bench NAME`` (each module has ``main(argv)``)."""
