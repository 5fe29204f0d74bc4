"""Evaluation: task metrics, the alignment tax (CMRC 2018, general benchmarks), drift,
an LLM judge, and the comparison report. Reproduces every column of the paper's tables."""
