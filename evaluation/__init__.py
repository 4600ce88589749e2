"""GPT4Tools evaluation: metrics, annotation files, runners (local and OpenAI-compatible), reports.

Installed as ``efe_langchain.evaluation``; ``efe eval`` is its command line.
"""

from efe_langchain.evaluation.metrics import METRICS, RecordScore, aggregate, bleu1, score_record
from efe_langchain.evaluation.records import AnnotationError, EvalRecord, load_records, prompt_images, prompt_tools
from efe_langchain.evaluation.run import parse_model_spec, run_evaluation, score_predictions

__all__ = [
    "METRICS",
    "AnnotationError",
    "EvalRecord",
    "RecordScore",
    "aggregate",
    "bleu1",
    "load_records",
    "parse_model_spec",
    "prompt_images",
    "prompt_tools",
    "run_evaluation",
    "score_predictions",
    "score_record",
]
