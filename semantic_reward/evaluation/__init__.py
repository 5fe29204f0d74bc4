"""Evaluation: task metrics (sacrebleu BLEU/chrF++ with intervals and paired tests, ROUGE-L, embedding
similarity, language consistency), the alignment tax (CMRC 2018, drift, general benchmarks), an LLM judge,
and the comparison report. ``python -m semantic_reward.evaluation run CONFIG.yaml`` runs it all."""
