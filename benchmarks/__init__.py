"""The benchmarks behind the figures in docs/benchmarks.md and the recipes in docs/models.md.

Each recipe runs from the repository root as `python -m benchmarks.<name> ...`. They share
`datasets` (every data set, and where its files are), `scoring` (the metrics and JSON
reports) and `runner` (training with progress lines, tuning a saved model).
"""
